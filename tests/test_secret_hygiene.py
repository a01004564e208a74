"""No key byte escapes: every command's output, the audit log, exceptions and reprs are scanned for them.

The secrets are known to the test: a raw-aes key file, key material imported
into the local keystore, the keystore's wrapping key and passphrase, a secret
given to ``keys encrypt``, and every data key a command used, learned after the
fact by unwrapping each file's header through the Python API (with the
payload and header keys derived from it).  Each is looked for raw, as hex in
either case, and as base64 (standard and URL-safe, padded or not), whole and
as a half-length fragment.

Two outputs carry a secret by design and are exempt, for their stdout and that
secret only: ``keys generate-data-key`` prints the data key it made (like
``aws kms generate-data-key``), and ``keys decrypt`` prints the plaintext it
was asked to decrypt.  Their stderr, the audit log and every other output are
still scanned for it.

The last tests watch a running encrypt and decrypt through /proc: encryption
never writes plaintext to any file, and the temporary a decryption fills with
not-yet-authenticated plaintext is mode 0600 until it is renamed into place.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

import adversary as adv
import envelope
from envelope.api import decryption_keyring
from envelope.cache import CachingKeyring, CacheLimits, DataKeyCache
from envelope.exceptions import EnvelopeError
from envelope.format import read_header
from envelope.kdf import FileKeys
from envelope.keyrings.base import DataKey, MultiKeyring
from envelope.keyrings.local import LocalKeyring
from envelope.keyrings.raw_aes import RawAesKeyring
from envelope.kms.store import KeyStore
from envelope.stream import unwrap_header
from keyfiles import write_key_file

PASSPHRASE = "correct horse battery staple 7f3a"
SUITE = 1


def forms(secret: bytes) -> list[bytes]:
    """The spellings a leak would take: raw, hex, base64, whole and in part."""
    out = []
    for part in (secret, secret[: max(12, len(secret) // 2)]):
        b64, url = base64.b64encode(part), base64.urlsafe_b64encode(part)
        out += [part, part.hex().encode(), part.hex().upper().encode(), b64.rstrip(b"="), url.rstrip(b"=")]
    return out


def leaks(data: bytes, secrets: dict[str, bytes], exempt: Iterable[bytes] = ()) -> list[str]:
    allowed = set(exempt)
    return [name for name, secret in secrets.items()
            if secret not in allowed and any(f in data for f in forms(secret))]


@dataclass
class Run:
    argv: tuple[str, ...]
    code: int
    stdout: bytes
    stderr: bytes
    exempt: set[bytes] = field(default_factory=set)


class World:
    """A keystore, a raw-aes key, files; every command run in its own process, its output kept."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.keystore = root / "keystore.db"
        self.kek_path = root / "kek.bin"
        self.kek = os.urandom(32)
        write_key_file(self.kek_path, self.kek)
        self.imported = os.urandom(32)
        write_key_file(root / "imported.bin", self.imported)
        self.secret = os.urandom(32)
        (root / "secret.bin").write_bytes(self.secret)
        self.secrets: dict[str, bytes] = {"raw-aes key": self.kek, "imported key material": self.imported,
                                          "keys encrypt plaintext": self.secret,
                                          "keystore passphrase": PASSPHRASE.encode()}
        self.runs: list[Run] = []
        (root / "tmp").mkdir()
        self.env = dict(os.environ, ENVELOPE_KEYSTORE=str(self.keystore), HOME=str(root), TMPDIR=str(root / "tmp"))
        self.env.pop("ENVELOPE_KEYSTORE_PASSPHRASE", None)
        self.env.pop("ENVELOPE_PRINCIPAL", None)

    def __call__(self, *argv: str, code: int = 0, env: dict[str, str] | None = None) -> Run:
        done = subprocess.run([sys.executable, "-m", "envelope", *argv], env=env or self.env, cwd=self.root,
                              capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
        run = Run(argv, done.returncode, done.stdout, done.stderr)
        assert run.code == code, (argv, run.code, run.stderr.decode(errors="replace"))
        self.runs.append(run)
        return run

    def path(self, name: str) -> str:
        return str(self.root / name)

    def learn_file(self, name: str, *keys: str, keystore: Path | None = None) -> bytes:
        """The data key of a file (and its derived keys), added to the secrets."""
        ring = decryption_keyring(list(keys) or None, keystore=str(keystore or self.keystore))
        previous = os.environ.get("ENVELOPE_KEYSTORE_PASSPHRASE")
        os.environ["ENVELOPE_KEYSTORE_PASSPHRASE"] = PASSPHRASE
        try:
            with open(self.root / name, "rb") as f:
                header, _, dek = unwrap_header(f, ring)
        finally:
            if previous is None:
                del os.environ["ENVELOPE_KEYSTORE_PASSPHRASE"]
            else:
                os.environ["ENVELOPE_KEYSTORE_PASSPHRASE"] = previous
        self.learn(f"data key of {name}", bytes(dek))
        derived = FileKeys.derive(dek, header.file_id, SUITE)
        self.secrets[f"payload key of {name}"] = derived.payload
        self.secrets[f"header key of {name}"] = derived.header
        return bytes(dek)

    def learn(self, name: str, secret: bytes) -> None:
        self.secrets[name] = secret


def _keystore_wrapping_key(db: Path) -> bytes:
    tag, hexkey = (db.parent / (db.name + ".key")).read_text().split()
    return bytes.fromhex(hexkey)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    w = World(tmp_path_factory.mktemp("hygiene"))
    kek = f"raw-aes:{w.kek_path}"
    (w.root / "plain.txt").write_bytes(os.urandom(200_000))
    (w.root / "small.txt").write_bytes(b"small file\n")

    # The keystore, with one key whose material the test knows.
    w("keys", "init")
    w.learn("keystore wrapping key", _keystore_wrapping_key(w.keystore))
    w("keys", "create", "--origin", "EXTERNAL", "--alias", "alias/known", "--description", "imported")
    w("keys", "import", "alias/known", "--raw-key", w.path("imported.bin"))
    w("keys", "create", "--alias", "alias/gen", "--tag", "team=a")
    for argv in (("list",), ("list", "--json"), ("describe", "alias/known"), ("describe", "alias/known", "--json"),
                 ("rotation-status", "alias/gen"), ("enable-rotation", "alias/gen"), ("rotate", "alias/gen"),
                 ("tags", "alias/gen"), ("alias", "list"), ("check",), ("whoami",), ("get-policy", "alias/known"),
                 ("maintain",)):
        w("keys", *argv)

    # Files: two master keys; the default local key; the data-key cache over two files.
    w("encrypt-file", "plain.txt", "-o", "a.envelope", "--key", kek, "--key", "local:alias/known",
      "--context", "app=x", "--chunk-size", "4K")
    w.learn_file("a.envelope", kek)
    w("encrypt-file", "small.txt", "-o", "b.envelope")
    w.learn_file("b.envelope")
    (w.root / "cached").write_bytes(b"")
    w("encrypt-file", "plain.txt", "small.txt", "--output-dir", "cached", "--key", "local:alias/known",
      "--cache-max-age", "60", code=2)  # a file where the directory should be: an error path
    (w.root / "cached").unlink()
    (w.root / "back").mkdir()
    w("encrypt-file", "plain.txt", "small.txt", "--output-dir", "cached", "--key", "local:alias/known",
      "--cache-max-age", "60")
    w.learn_file("cached/plain.txt.envelope", "local:alias/known")
    w.learn_file("cached/small.txt.envelope", "local:alias/known")
    w("encrypt-file", "-", "-o", "c.envelope", "--key", kek, "--context", "app=x")  # stdin: empty plaintext
    w.learn_file("c.envelope", kek)

    for argv in (("decrypt-file", "a.envelope", "-o", "a1.out", "--key", kek),
                 ("decrypt-file", "a.envelope", "-o", "a2.out", "--key", "local:alias/known", "--context", "app=x"),
                 ("decrypt-file", "a.envelope", "-o", "a3.out", "--range", "100:9000"),
                 ("decrypt-file", "cached/plain.txt.envelope", "cached/small.txt.envelope", "--output-dir", "back",
                  "--cache-max-age", "60"),
                 ("decrypt-file", "b.envelope", "-o", "-"),
                 ("inspect", "a.envelope"), ("inspect", "a.envelope", "--json")):
        w(*argv)
    w("rewrap", "a.envelope", "-o", "r.envelope", "--key", "local:alias/gen", "--unwrap-key", kek)
    w.learn_file("r.envelope")
    # A sender with only an RSA public key; the keystore holds the private half.
    w("keys", "create", "--spec", "RSA_2048", "--alias", "alias/rsa")
    w("keys", "public-key", "alias/rsa", "-o", "rsa.pem")
    w("encrypt-file", "small.txt", "-o", "s.envelope", "--key", f"rsa-public:{w.path('rsa.pem')}")
    w.learn_file("s.envelope", "local:alias/rsa")
    w("decrypt-file", "s.envelope", "-o", "s.out", "--key", "local:alias/rsa")

    # Error paths: the wrong key, the wrong context, a forged header whose data key
    # unwraps but fails the commitment, a damaged chunk, a cut file, a disabled key.
    write_key_file(w.root / "other.bin", os.urandom(32))
    w("decrypt-file", "a.envelope", "-o", "x1", "--key", f"raw-aes:{w.path('other.bin')}", code=5)
    w("decrypt-file", "a.envelope", "-o", "x2", "--key", kek, "--context", "app=y", code=6)
    head_a, body_a = adv.parse_header((w.root / "a.envelope").read_bytes())
    head_c, _ = adv.parse_header((w.root / "c.envelope").read_bytes())
    (w.root / "forged.envelope").write_bytes(replace(head_a, entries=head_c.entries).encode() + body_a)
    w("decrypt-file", "forged.envelope", "-o", "x3", "--key", kek, code=4)
    damaged = bytearray((w.root / "a.envelope").read_bytes())
    damaged[-5] ^= 1
    (w.root / "damaged.envelope").write_bytes(bytes(damaged))
    w("decrypt-file", "damaged.envelope", "-o", "x4", "--key", kek, code=4)
    (w.root / "cut.envelope").write_bytes(bytes(damaged[: len(head_a.encode()) + 4096 + 16]))
    w("decrypt-file", "cut.envelope", "-o", "x5", "--key", kek, code=4)
    w("keys", "disable", "alias/known")
    w("decrypt-file", "a.envelope", "-o", "x6", "--key", "local:alias/known", code=5)
    w("keys", "enable", "alias/known")
    write_key_file(w.root / "short.key", os.urandom(31).hex().encode())
    w("encrypt-file", "small.txt", "-o", "x7", "--key", f"raw-aes:{w.path('short.key')}", code=5)

    # The KMS calls, for scripts.
    w("keys", "encrypt", "alias/known", "--in", "secret.bin", "-o", "secret.blob", "--context", "purpose=t")
    w("keys", "encrypt", "alias/known", "--in", "secret.bin", "--context", "purpose=t", "--json")
    w("keys", "decrypt", "--in", "secret.blob", "--context", "purpose=t", "--json").exempt.add(w.secret)
    w("keys", "decrypt", "--in", "secret.blob", "--context", "purpose=u", code=5)
    w("keys", "decrypt", "--in", "secret.blob", "--key", "alias/gen", "--context", "purpose=t", code=5)
    w("keys", "re-encrypt", "--in", "secret.blob", "--to", "alias/gen", "--context", "purpose=t", "--json")
    gdk = w("keys", "generate-data-key", "alias/known", "--context", "purpose=t", "--json")
    plaintext = base64.b64decode(json.loads(gdk.stdout)["Plaintext"])
    w.learn("generate-data-key plaintext", plaintext)
    gdk.exempt.add(plaintext)
    w("keys", "generate-data-key", "alias/known", "--without-plaintext", "--json")
    w("keys", "generate-random", "32", "--json")
    w("keys", "audit")
    w("keys", "audit", "--json")

    # A passphrase keystore, opened right and wrong.
    pass_env = dict(w.env, ENVELOPE_KEYSTORE=w.path("pass.db"), ENVELOPE_KEYSTORE_PASSPHRASE=PASSPHRASE)
    w("keys", "init", "--passphrase", env=pass_env)
    w("encrypt-file", "small.txt", "-o", "p.envelope", env=pass_env)
    w.learn_file("p.envelope", keystore=w.root / "pass.db")
    w("decrypt-file", "p.envelope", "-o", "p.out", env=pass_env)
    wrong = dict(pass_env, ENVELOPE_KEYSTORE_PASSPHRASE=PASSPHRASE[::-1])
    w("decrypt-file", "p.envelope", "-o", "p2.out", env=wrong, code=5)

    # The benchmark, briefly: its data keys are its own, but it is handed the known key.
    w("bench", "--quick", "--no-files", "--json", "-q", "--key", "local:alias/known", "--calls", "2",
      "--threads", "1", "--chunk-sizes", "64K")
    return w


def test_the_scan_finds_a_leak_when_there_is_one(world: World) -> None:
    # The scanner itself must be able to fail, in every spelling.
    for name, secret in list(world.secrets.items())[:3]:
        for spelling in forms(secret):
            assert leaks(b"envelope: error: " + spelling + b"\n", world.secrets) == [name]


def test_no_command_prints_a_key_or_secret(world: World) -> None:
    assert len(world.runs) > 50 and len(world.secrets) > 20
    found = []
    for run in world.runs:
        for stream, data in (("stdout", run.stdout), ("stderr", run.stderr)):
            names = leaks(data, world.secrets, run.exempt if stream == "stdout" else ())
            found += [f"{' '.join(run.argv)} ({stream}): {n}" for n in names]
    assert found == []


def test_error_paths_print_one_line_and_no_traceback(world: World) -> None:
    failed = [run for run in world.runs if run.code != 0]
    assert len(failed) >= 10
    for run in failed:
        lines = run.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("envelope: error: "), (run.argv, run.stderr)


def test_the_exempt_outputs_do_carry_their_secret(world: World) -> None:
    # Otherwise the exemption would hide nothing, and prove nothing.
    exempt = [run for run in world.runs if run.exempt]
    assert [run.argv[:2] for run in exempt] == [("keys", "decrypt"), ("keys", "generate-data-key")]
    for run in exempt:
        assert leaks(run.stdout, world.secrets) != []


def test_the_audit_log_records_every_call_and_no_secret(world: World) -> None:
    expected = {world.keystore: {"GenerateDataKey", "Encrypt", "Decrypt", "ReEncrypt", "ImportKeyMaterial",
                                 "GenerateDataKeyWithoutPlaintext", "GenerateRandom"},
                world.root / "pass.db": {"GenerateDataKey", "Decrypt"}}
    for db, operations in expected.items():
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT * FROM audit").fetchall()
        assert operations <= {row[3] for row in rows}
        assert {0, 1} <= {row[5] for row in rows} or db.name == "pass.db"  # refused calls are logged too
        text = "\n".join(repr(row) for row in rows).encode()
        assert leaks(text, world.secrets) == []


def test_the_keystore_files_hold_no_key_in_the_clear(world: World) -> None:
    # The database (and any journal) stores backing keys sealed; the wrapping key lives only in its key file.
    files = [p for p in world.root.iterdir() if p.name.startswith(("keystore.db", "pass.db"))]
    secrets = {k: v for k, v in world.secrets.items() if k != "keystore wrapping key"}
    for path in files:
        if path.name == "keystore.db.key":
            continue
        assert leaks(path.read_bytes(), secrets) == [], path


def test_no_file_left_behind_holds_a_key(world: World) -> None:
    skip = {"kek.bin", "imported.bin", "secret.bin", "keystore.db.key", "other.bin", "s3.kek"}
    for path in world.root.rglob("*"):
        if path.is_file() and path.name not in skip:
            assert leaks(path.read_bytes(), world.secrets) == [], path
    assert not list(world.root.rglob(".envelope-tmp-*"))


def test_s3_commands_print_no_key(world: World, s3_endpoint: str) -> None:
    boto3 = pytest.importorskip("boto3")
    env = dict(world.env, AWS_ENDPOINT_URL_S3=s3_endpoint, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    bucket = "hygiene" + os.urandom(4).hex()
    s3.create_bucket(Bucket=bucket)
    kek = f"raw-aes:{world.kek_path}"
    write_key_file(world.root / "s3.kek", os.urandom(32))
    runs = [world("s3", "cp", "plain.txt", f"s3://{bucket}/p", "--key", kek, "--context", "app=s3", env=env),
            world("s3", "inspect", f"s3://{bucket}/p", env=env),
            world("s3", "cp", f"s3://{bucket}/p", "s3-back.txt", "--key", kek, env=env),
            world("s3", "cp", f"s3://{bucket}/p", "s3-part.txt", "--key", kek, "--range", "10:5000", env=env),
            world("s3", "rewrap", f"s3://{bucket}/p", "--key", "local:alias/known", "--from-key", kek, env=env),
            world("s3", "cp", f"s3://{bucket}/p", "s3-x.txt", "--key", f"raw-aes:{world.path('s3.kek')}",
                  env=env, code=5)]
    body = s3.get_object(Bucket=bucket, Key="p")["Body"].read()
    _, _, dek = unwrap_header(io.BytesIO(body), MultiKeyring([LocalKeyring("alias/known", keystore=world.keystore)]))
    secrets = dict(world.secrets, **{"S3 object data key": bytes(dek)})
    for run in runs:
        assert leaks(run.stdout + run.stderr, secrets) == [], run.argv
    metadata = s3.head_object(Bucket=bucket, Key="p")["Metadata"]
    assert leaks(json.dumps(metadata).encode(), secrets) == []


def _exceptions(world: World) -> Iterator[BaseException]:
    kek_ring = MultiKeyring([RawAesKeyring(world.kek)])
    for name, keys, context in (("forged.envelope", kek_ring, None), ("damaged.envelope", kek_ring, None),
                                ("cut.envelope", kek_ring, None), ("a.envelope", kek_ring, {"app": "y"}),
                                ("a.envelope", MultiKeyring([RawAesKeyring(os.urandom(32))]), None)):
        try:
            envelope.decrypt((world.root / name).read_bytes(), keys=keys, context=context)
        except EnvelopeError as exc:
            yield exc
        else:
            raise AssertionError(f"{name} decrypted")
    with KeyStore(world.keystore, create=False) as store:
        blob = (world.root / "secret.blob").read_bytes()
        for call in (lambda: store.decrypt(blob, {"purpose": "u"}),
                     lambda: store.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), {"purpose": "t"}),
                     lambda: store.encrypt("alias/none", bytearray(world.secret), {})):
            try:
                call()
            except EnvelopeError as exc:
                yield exc
            else:
                raise AssertionError("the call succeeded")


def test_exception_messages_and_their_causes_hold_no_key(world: World) -> None:
    seen = 0
    for exc in _exceptions(world):
        chain: BaseException | None = exc
        while chain is not None:
            text = f"{chain}\n{chain!r}\n{chain.args!r}".encode()
            assert leaks(text, world.secrets) == [], repr(chain)
            chain = chain.__cause__ or chain.__context__
            seen += 1
    assert seen >= 8


def test_reprs_of_keys_keyrings_headers_and_caches_hold_no_key(world: World) -> None:
    dek = bytearray(world.secrets["data key of a.envelope"])
    blob = (world.root / "a.envelope").read_bytes()
    header, _ = read_header(io.BytesIO(blob))
    store = KeyStore(world.keystore, create=False)
    local = LocalKeyring("alias/known", keystore=store)
    raw = RawAesKeyring(world.kek)
    cache = DataKeyCache(CacheLimits(60))
    caching = CachingKeyring(MultiKeyring([raw, local]), cache)
    with caching.generate_data_key({"app": "x"}, 10) as fresh:
        objects: list[object] = [raw, RawAesKeyring.from_file(world.kek_path), local, caching, cache,
                                 DataKey(dek, header.wrapped_keys), fresh, header, *header.wrapped_keys,
                                 FileKeys.derive(dek, header.file_id, SUITE), store]
        objects += list(cache._entries.values())  # the cached entry, plaintext included
        secrets = dict(world.secrets, **{"fresh data key": bytes(fresh.plaintext)})
        for obj in objects:
            text = f"{obj!r}\n{obj}".encode()
            assert leaks(text, secrets) == [], type(obj).__name__
    store.close()


# -- temporaries, watched from outside the process --------------------------------------------------------------


def _descriptors(pid: int) -> list[tuple[Path, str]]:
    """Process *pid*'s open descriptors: (a path that opens the file, what /proc names it)."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.append((Path(f"/proc/{pid}/fd/{fd}"), os.readlink(f"/proc/{pid}/fd/{fd}")))
        except OSError:
            continue
    return found


def _open_files(pid: int) -> list[str]:
    return [target for _, target in _descriptors(pid) if target.startswith("/")]


def _wait_for(predicate, what: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def _temporaries(pid: int, directory: Path) -> list[tuple[Path, str]]:
    """The output temporaries process *pid* holds open in *directory*: (a path that opens it, what /proc names it).

    Named ones are ``.envelope-tmp-*``; unnamed ones (O_TMPFILE) show as ``DIR/#INODE (deleted)``.
    """
    def temporary(target: str) -> bool:
        name = target.removesuffix(" (deleted)")
        return os.path.dirname(name) == str(directory) and (
            os.path.basename(name).startswith(".envelope-tmp-") or target.endswith(" (deleted)"))

    return [(path, target) for path, target in _descriptors(pid) if temporary(target)]


def _named_temporaries(directory: Path) -> list[Path]:
    return sorted(directory.glob(".envelope-tmp-*"))


def _spawn(argv: list[str], root: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, HOME=str(root), TMPDIR=str(root / "tmp"), ENVELOPE_KEYSTORE=str(root / "ks.db"))
    return subprocess.Popen([sys.executable, "-m", "envelope", *argv], env=env, cwd=root, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=lambda: os.umask(0o022))


BLOCK = 1 << 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches the process through /proc")
def test_encryption_writes_no_plaintext_to_any_file(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "out").mkdir()
    kek = write_key_file(tmp_path / "kek", os.urandom(32))
    pattern = os.urandom(BLOCK)  # every MiB of plaintext is this block: any copy of it on disk is a leak
    marker = pattern[:64]
    proc = _spawn(["encrypt-file", "-", "-o", str(tmp_path / "out" / "f.envelope"), "--key", f"raw-aes:{kek}",
                   "--chunk-size", "64K", "--threads", "1"], tmp_path)
    assert proc.stdin is not None
    written = []
    try:
        for i in range(24):
            proc.stdin.write(pattern)
            proc.stdin.flush()
            if i in (5, 12, 23):  # the first chunk, then 4 MiB batches, are written as they fill
                temp, name = _wait_for(lambda: [(p, n) for p, n in _temporaries(proc.pid, tmp_path / "out")
                                                if p.stat().st_size > BLOCK], "ciphertext in the temporary")[0]
                opened = _open_files(proc.pid)
                written.append((name, opened))
                assert temp.read_bytes()[:8] == b"ENVELOPE"
                assert temp.stat().st_mode & 0o777 == 0o600
                for path in tmp_path.rglob("*"):
                    if path.is_file():
                        assert marker not in path.read_bytes(), path
                assert not [p for p in opened if p.startswith(str(tmp_path)) and p != name], opened
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait()
    assert len(written) == 3 and all(name in opened for name, opened in written)
    out = tmp_path / "out" / "f.envelope"
    assert out.stat().st_mode & 0o777 == 0o644
    assert envelope.decrypt(out.read_bytes(), keys=[f"raw-aes:{kek}"]) == pattern * 24
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["f.envelope", "kek", "out", "tmp"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches the process through /proc")
@pytest.mark.parametrize("complete", [True, False], ids=["verified", "truncated"])
def test_a_decryption_temporary_is_0600_while_it_holds_unverified_plaintext(tmp_path: Path, complete: bool) -> None:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "out").mkdir()
    kek = write_key_file(tmp_path / "kek", os.urandom(32))
    plaintext = os.urandom(16 * BLOCK)
    blob = envelope.encrypt(plaintext, keys=[f"raw-aes:{kek}"], chunk_size=64 << 10)
    dst = tmp_path / "out" / "f"
    proc = _spawn(["decrypt-file", "-", "-o", str(dst), "--key", f"raw-aes:{kek}", "--threads", "1"], tmp_path)
    assert proc.stdin is not None
    try:
        proc.stdin.write(blob[: 10 * BLOCK])
        proc.stdin.flush()
        temp, _ = _wait_for(lambda: [(p, n) for p, n in _temporaries(proc.pid, tmp_path / "out")
                                     if p.stat().st_size >= BLOCK], "plaintext in the temporary")[0]
        assert temp.read_bytes()[:BLOCK] == plaintext[:BLOCK]  # it does hold plaintext, not yet authenticated
        assert temp.stat().st_mode & 0o777 == 0o600
        proc.stdin.write(blob[10 * BLOCK : None if complete else -100])
        proc.stdin.close()
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert not _named_temporaries(tmp_path / "out")
    if complete:
        assert code == 0 and dst.read_bytes() == plaintext
        assert dst.stat().st_mode & 0o777 == 0o644  # the umask applies to the finished file only
    else:
        assert code == 4 and not dst.exists()
