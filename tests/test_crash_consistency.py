"""SIGKILL at random moments: what a killed ``envelope`` leaves is always safe and a rerun finishes the job.

For every command the checks are the same: the input is intact; the
destination is absent or complete and valid; nothing else is left in the
directory (temporary outputs have no name until they are complete, see
:mod:`envelope.atomic`); a rerun succeeds and leaves nothing behind.  For the
keystore: it opens, ``keys check`` (SQLite's integrity check and envelope's
own) finds nothing, and every key created before the kill still decrypts what
it encrypted.

``ENVELOPE_CRASH_ITERATIONS`` (default 10 kills per command) and
``ENVELOPE_CRASH_SEED`` make a longer or a different run.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from crash_kit import ITERATIONS, Killer, envelope, holding, leftovers, sha256, writing_under
from envelope import api
from envelope.atomic import TEMP_PREFIX
from envelope.cli.main import main as cli_main
from envelope.kms.store import KeyStore
from keyfiles import write_key_file

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to time the kills")

#: Above the S3 multipart threshold (8 MiB), so uploads go in parts.
SIZE = int(os.environ.get("ENVELOPE_CRASH_SIZE_MB", "9")) << 20
#: Keystore calls take milliseconds once the keystore is open: kill within this much of its opening.
KEYSTORE_WINDOW = 0.03


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A large plaintext, two key-encryption keys, and the plaintext sealed under the first."""
    root = tmp_path_factory.mktemp("corpus")
    plain = root / "plain.bin"
    with open(plain, "wb") as f:
        for _ in range(SIZE >> 20):
            f.write(os.urandom(1 << 20))
    kek1, kek2 = root / "kek1", root / "kek2"
    write_key_file(kek1, os.urandom(32))
    write_key_file(kek2, os.urandom(32))
    sealed = root / "sealed.envelope"
    api.encrypt_file(plain, sealed, keys=[f"raw-aes:{kek1}"])
    return {"plain": plain, "kek1": kek1, "kek2": kek2, "sealed": sealed}


def _plaintext_of(sealed: Path, *keks: Path) -> str:
    out = sealed.with_name(sealed.name + ".check")
    api.decrypt_file(sealed, out, keys=[f"raw-aes:{k}" for k in keks])
    try:
        return sha256(out)
    finally:
        out.unlink()


def _rerun(*args: str) -> None:
    """The same command again, to completion (in this process: the CLI's own entry point)."""
    assert cli_main([*args, "--quiet"]) == 0


def _report(name: str, killer: Killer) -> None:
    print(f"\n{name}: {killer.iterations} kills: {killer.outcomes}")


def _kill_then_rerun(tmp_path: Path, name: str, src: Path | None, out_name: str,
                     command: Callable[[Path], list[str]], digest: Callable[[Path], str], want: str) -> None:
    """Kill *command* (writing OUT) again and again.  Each time: SRC intact, OUT absent or whole and valid,
    nothing else beside it; then the command again with --force completes and leaves nothing either."""
    src_hash = sha256(src) if src is not None else None
    killer = Killer(name)
    killer.measure(envelope(*command(tmp_path / f"warm-{out_name}"), "-q"))
    for i in range(killer.iterations):
        work = tmp_path / f"run{i}"
        work.mkdir()
        out = work / out_name
        killer.run(i, envelope(*command(out), "-q"), writing_under(work))
        if src is not None:
            assert sha256(src) == src_hash
        assert leftovers(work, {out_name}) == []
        if out.exists():
            assert digest(out) == want
        _rerun(*command(out), "--force")
        assert digest(out) == want and leftovers(work, {out_name}) == []
        shutil.rmtree(work)
    _report(name, killer)


def test_killed_encrypt_file_leaves_its_input_and_a_whole_output_or_none(corpus, tmp_path):
    plain, kek = corpus["plain"], corpus["kek1"]
    _kill_then_rerun(tmp_path, "encrypt-file", plain, "out.envelope",
                     lambda out: ["encrypt-file", str(plain), "-o", str(out), "--key", f"raw-aes:{kek}"],
                     lambda out: _plaintext_of(out, kek), sha256(plain))


def test_killed_decrypt_file_never_leaves_unverified_plaintext(corpus, tmp_path):
    sealed, kek = corpus["sealed"], corpus["kek1"]
    _kill_then_rerun(tmp_path, "decrypt-file", sealed, "plain.bin",
                     lambda out: ["decrypt-file", str(sealed), "-o", str(out), "--key", f"raw-aes:{kek}"],
                     sha256, sha256(corpus["plain"]))


def test_killed_rewrap_leaves_the_old_file_or_the_new_one(corpus, tmp_path):
    kek1, kek2, want = corpus["kek1"], corpus["kek2"], sha256(corpus["plain"])
    killer = Killer("rewrap")
    warm = tmp_path / "warm.envelope"
    shutil.copyfile(corpus["sealed"], warm)
    killer.measure(envelope("rewrap", str(warm), "--key", f"raw-aes:{kek2}", "--unwrap-key", f"raw-aes:{kek1}", "-q"))
    for i in range(killer.iterations):
        work = tmp_path / f"run{i}"
        work.mkdir()
        target = work / "file.envelope"
        shutil.copyfile(corpus["sealed"], target)
        before = sha256(target)
        # Odd iterations write a new file (-o), even ones replace FILE itself, the default.
        out = work / "new.envelope" if i % 3 == 1 else target
        args = ["rewrap", str(target), "--key", f"raw-aes:{kek2}", "--unwrap-key", f"raw-aes:{kek1}",
                "--unwrap-key", f"raw-aes:{kek2}"]
        if out != target:
            args += ["-o", str(out)]
        expected = {target.name, out.name}
        killer.run(i, envelope(*args, "-q"), writing_under(work))
        if out != target:
            assert sha256(target) == before
        assert leftovers(work, expected) == []
        if out.exists():
            # Old (opens under kek1 only) or new (kek2 only): either way whole and authentic.
            assert _plaintext_of(out, kek1, kek2) == want
        _rerun(*args, *(["--force"] if out != target else []))
        assert _plaintext_of(out, kek2) == want
        assert leftovers(work, expected) == []
        shutil.rmtree(work)
    _report("rewrap", killer)


# -- S3 ---------------------------------------------------------------------------------------------------


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """boto3's environment for the moto S3 server, for this process and the CLI it starts; a fresh bucket."""
    import boto3

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                        "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = f"crash-{os.urandom(4).hex()}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def _object_plaintext(client, bucket: str, key: str, kek: Path, into: Path) -> str | None:  # type: ignore[no-untyped-def]
    """The object's plaintext hash, or None if there is no object."""
    from botocore.exceptions import ClientError

    from envelope.s3 import EncryptedS3Client

    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return None
    EncryptedS3Client(client, keys=[f"raw-aes:{kek}"]).download_file(bucket, key, str(into))
    try:
        return sha256(into)
    finally:
        into.unlink()


def _abort_uploads(client, bucket: str) -> int:  # type: ignore[no-untyped-def]
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    for upload in uploads:
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    return len(uploads)


def test_killed_s3_upload_leaves_no_object_or_a_whole_one(corpus, tmp_path, s3_env):
    client, bucket = s3_env
    plain, kek = corpus["plain"], corpus["kek1"]
    want = sha256(plain)
    killer = Killer("s3-cp-up")
    killer.measure(envelope("s3", "cp", str(plain), f"s3://{bucket}/warm", "--key", f"raw-aes:{kek}", "-q"))
    assert _object_plaintext(client, bucket, "warm", kek, tmp_path / "check") == want
    warm = client.head_object(Bucket=bucket, Key="warm")
    orphaned = 0
    for i in range(killer.iterations):
        key = f"obj{i}"
        args = ("s3", "cp", str(plain), f"s3://{bucket}/{key}", "--key", f"raw-aes:{kek}")
        killer.run(i, envelope(*args, "-q"), holding(plain))  # at work: reading, sealing, sending parts
        assert sha256(plain) == want
        found = _object_plaintext(client, bucket, key, kek, tmp_path / "check")
        assert found in (None, want)
        # A killed client cannot abort its multipart upload: it stays invisible (no object) until
        # S3's AbortIncompleteMultipartUpload lifecycle rule, or this, removes it.
        orphaned += _abort_uploads(client, bucket)
        if i % 5 != 4:
            continue  # nothing local to clean: rerunning every upload would only time moto
        _rerun(*args)
        head = client.head_object(Bucket=bucket, Key=key)
        assert (head["ContentLength"], head["Metadata"]) == (warm["ContentLength"], warm["Metadata"])
        assert _abort_uploads(client, bucket) == 0
    print(f"\ns3 cp up: multipart uploads orphaned by kills: {orphaned}")
    _report("s3 cp up", killer)


def test_killed_s3_download_leaves_no_file_or_a_whole_verified_one(corpus, tmp_path, s3_env):
    client, bucket = s3_env
    kek = corpus["kek1"]
    client.upload_file(str(corpus["sealed"]), bucket, "sealed")
    _kill_then_rerun(tmp_path, "s3-cp-down", None, "plain.bin",
                     lambda out: ["s3", "cp", f"s3://{bucket}/sealed", str(out), "--key", f"raw-aes:{kek}"],
                     sha256, sha256(corpus["plain"]))


# -- the keystore ---------------------------------------------------------------------------------------


class _Witnesses:
    """Something encrypted under every usable key of the keystore, to prove after each kill that it still opens.

    The keys there at the start each seal a whole envelope file; keys that appear later seal a KMS blob
    (one keystore call each, so a keystore with hundreds of keys is checked in moments).
    """

    def __init__(self, keystore: Path) -> None:
        self.keystore = keystore
        self.files: dict[str, tuple[bytes, bytes]] = {}
        self.blobs: dict[str, tuple[bytes, bytes]] = {}

    def _usable(self, store: KeyStore) -> list[str]:
        # An EXTERNAL key waiting for its material is PendingImport, not Enabled.
        return [m.key_id for m in store.list_keys() if m.state == "Enabled" and m.key_spec == "SYMMETRIC_DEFAULT"]

    def seal_files(self) -> None:
        with KeyStore(self.keystore) as store:
            usable = self._usable(store)
        for key_id in usable:
            data = os.urandom(100)
            self.files[key_id] = (api.encrypt(data, keys=[f"local:{key_id}"], keystore=str(self.keystore)), data)

    def check(self, everything: bool = False) -> None:
        """verify() opens every backing key each time; blobs are all opened at the end, and a sample meanwhile
        (each Decrypt writes an audit row, so all of them after every kill would cost minutes)."""
        assert (self.keystore.stat().st_mode & 0o777) == 0o600
        with KeyStore(self.keystore) as store:  # opening rolls back a killed transaction (a hot -journal)
            assert store.verify() == []
            items = list(self.blobs.items())
            for key_id, (blob, data) in items if everything else random.sample(items, min(len(items), 5)):
                assert store.decrypt(blob) == (data, key_id)
            for key_id in self._usable(store):
                if key_id not in self.blobs:
                    data = os.urandom(32)
                    self.blobs[key_id] = (store.encrypt(key_id, data), data)
        for key_id, (blob, data) in self.files.items():
            assert api.decrypt(blob, keys=[f"local:{key_id}"], keystore=str(self.keystore)) == data, key_id
        # A journal the kill left before it held anything is not hot; SQLite removes it at the next
        # write, and every call above wrote its audit row.
        expected = {self.keystore.name, self.keystore.name + ".key", "material.bin"}
        assert leftovers(self.keystore.parent, expected) == []


def test_killed_keystore_commands_leave_a_sound_keystore(tmp_path, _isolated_keystore):
    keystore: Path = _isolated_keystore
    with KeyStore(keystore) as store:
        first = store.create_key(alias="alias/first").key_id
        second = store.create_key().key_id
    witnesses = _Witnesses(keystore)
    witnesses.seal_files()
    witnesses.check()
    material = write_key_file(keystore.parent / "material.bin", os.urandom(32))
    killer = Killer("keystore")
    killer.measure(envelope("keys", "create", "--alias", "alias/warm"))
    ks = holding(keystore)
    for i in range(killer.iterations):
        kind = ("create", "rotate", "alias", "import", "create-rsa")[i % 5]
        if kind == "create":
            cmd = envelope("keys", "create", "--alias", f"alias/k{i}", "--description", "x" * 1000)
        elif kind == "rotate":
            cmd = envelope("keys", "rotate", first)
        elif kind == "alias":
            cmd = envelope("keys", "alias", "update", "alias/first", second if i % 2 else first)
        elif kind == "import":
            with KeyStore(keystore) as store:
                external = store.create_key(origin="EXTERNAL").key_id
            cmd = envelope("keys", "import", external, "--raw-key", str(material))
        else:
            cmd = envelope("keys", "create", "--spec", "RSA_2048")
        killer.run(i, cmd, ks, window=KEYSTORE_WINDOW)
        witnesses.check()
        # The same command again completes, unless it had landed and cannot be done twice.
        landed = (kind == "import" and _enabled(keystore, external)) or \
            (kind == "create" and _has_alias(keystore, f"alias/k{i}"))
        if not landed:
            assert cli_main(cmd[3:]) == 0
        witnesses.check()
    witnesses.check(everything=True)
    _report("keystore commands", killer)


def _enabled(keystore: Path, key_id: str) -> bool:
    with KeyStore(keystore) as store:
        return store.describe_key(key_id).state == "Enabled"


def _has_alias(keystore: Path, alias: str) -> bool:
    with KeyStore(keystore) as store:
        return any(alias in meta.aliases for meta in store.list_keys())


_BUSY = """
import os, sys
from envelope.kms.store import KeyStore
store = KeyStore(sys.argv[1])
keys = [store.create_key().key_id for _ in range(2)]
alias = f"alias/busy{os.getpid()}"
store.create_alias(alias, keys[0])
print("ready", flush=True)
n = 0
while True:
    n += 1
    new = store.create_key(description=str(n)).key_id
    store.rotate_key_on_demand(keys[n % 2])
    store.update_alias(alias, new)
    store.tag_key(new, {"n": str(n)})
    keys.append(new)
"""


def test_killed_keystore_mid_transaction_stays_consistent(tmp_path, _isolated_keystore):
    """One process doing write after write: a kill lands inside SQLite transactions, not in start-up."""
    keystore: Path = _isolated_keystore
    with KeyStore(keystore) as store:
        store.create_key()
    witnesses = _Witnesses(keystore)
    witnesses.seal_files()
    witnesses.check()
    killer = Killer("keystore-busy")
    cmd = [sys.executable, "-c", _BUSY, str(keystore)]
    for i in range(killer.iterations):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read()
        time.sleep(killer.rng.uniform(0, 0.3))  # a few dozen transactions
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL, proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        killer.outcomes.add("killed mid-loop")
        witnesses.check()
    witnesses.check(everything=True)
    assert len(witnesses.blobs) > killer.iterations  # keys were being created when the kills came
    _report("keystore busy loop", killer)


def test_killed_keystore_creation_leaves_nothing_a_rerun_trips_on(tmp_path):
    killer = Killer("keystore-creation")
    env = dict(os.environ, ENVELOPE_KEYSTORE=str(tmp_path / "warm" / "keystore.db"))
    killer.measure(envelope("keys", "create"), env)
    for i in range(killer.iterations):
        keystore = tmp_path / f"run{i}" / "keystore.db"
        env = dict(os.environ, ENVELOPE_KEYSTORE=str(keystore))
        killer.run(i, envelope("keys", "create"), holding(keystore), env, window=KEYSTORE_WINDOW)
        if keystore.parent.exists():
            # No stray copy of the wrapping key, whatever the moment.
            assert leftovers(keystore.parent, {"keystore.db", "keystore.db.key", "keystore.db-journal"}) == []
        assert cli_main(["keys", "create", "--keystore", str(keystore)]) == 0
        assert leftovers(keystore.parent, {"keystore.db", "keystore.db.key"}) == []
        with KeyStore(keystore) as store:
            assert store.verify() == []
            for meta in store.list_keys():
                blob = api.encrypt(b"x", keys=[f"local:{meta.key_id}"], keystore=str(keystore))
                assert api.decrypt(blob, keystore=str(keystore)) == b"x"
    _report("keystore creation", killer)


def test_temporary_names_of_killed_runs_are_swept_by_the_next_run(tmp_path, corpus):
    """Where a temporary needs a name (--force replacing a file), a run killed holding it leaves it; the next
    output written to that directory removes it, and never one a live process still holds."""
    code = ("import sys, time; from envelope.atomic import _named; fd, name = _named(sys.argv[1]); "
            "print(name, flush=True); time.sleep(60)")
    dead = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    live = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert dead.stdout is not None and live.stdout is not None
        dead_name, live_name = dead.stdout.readline().strip(), live.stdout.readline().strip()
        dead.kill()
        dead.wait()
        assert os.path.basename(dead_name).startswith(TEMP_PREFIX) and os.path.exists(dead_name)
        done = subprocess.run(envelope("encrypt-file", str(corpus["kek2"]), "-o", str(tmp_path / "x.env"),
                                       "--key", f"raw-aes:{corpus['kek1']}"), capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert not os.path.exists(dead_name)
        assert os.path.exists(live_name)
    finally:
        for proc in (dead, live):
            proc.kill()
            proc.wait()
            if proc.stdout:
                proc.stdout.close()
