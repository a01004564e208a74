"""Start-up: a command builds only its own parsers, so encrypting a file imports no S3 or admin code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from envelope.cli.main import COMMAND_MODULES, build_parser
from envelope.engines import native_available
from envelope.kms.model.keys import key_id_bytes, key_id_from_bytes

#: What encrypt-file and decrypt-file with the local keystore must not import: each
#: belongs to another command, and together they were most of the start-up time.  Nor
#: ``dataclasses`` (it imports ``inspect``, and each class it builds costs milliseconds: ~40 ms
#: for the records on this path), nor the header view only ``inspect`` and ``--json`` print, nor the
#: random-access reader only ``--range`` uses.
NOT_FOR_FILES = ("boto3", "botocore", "tqdm", "concurrent.futures", "envelope.s3", "envelope.bench",
                 "envelope.rewrap", "envelope.cli.s3", "envelope.cli.keys", "envelope.cli.kms_ops",
                 "envelope.cli.keys_asymmetric", "envelope.cli.keys_import", "envelope.cli.keys_access",
                 "envelope.cli.bench", "envelope.cli.rewrap", "envelope.bulk", "envelope.cli.bulk", "dask",
                 "distributed", "fsspec", "pandas", "pyarrow", "envelope.filesystem", "dataclasses", "inspect",
                 "envelope.cli.header_view", "envelope.reader")

#: What the symmetric GenerateDataKey and Decrypt of the local keystore never use: RSA, EC and key
#: serialization (asymmetric keys, the import of key material, ``rsa-public:`` keys) load on first use.
NOT_FOR_SYMMETRIC_KEYS = ("envelope.kms.crypto.asymmetric", "envelope.keyrings.rsa_public",
                          "cryptography.hazmat.primitives.asymmetric", "cryptography.hazmat.primitives.serialization")

#: What opening the local keystore and using a known symmetric key never need: paths are strings
#: (pathlib brings urllib.parse and ipaddress), temporary names come from O_TMPFILE (tempfile brings
#: random and shutil), hashes and random ids only for caches, grants, imports and new access keys.
#: Together about 30 ms of ``-X importtime``.
NOT_FOR_THE_LOCAL_KEYSTORE = ("pathlib", "urllib", "ipaddress", "tempfile", "random", "hashlib", "hmac",
                              "secrets")

#: With the C core, the key schedule and the keystore's AES-GCM come from its OpenSSL too.
NOT_WITH_THE_NATIVE_ENGINE = ("cryptography", "envelope.engines.reference")

# Only what the command imports counts, not what the interpreter had loaded before it (an editable
# install's import hook, for one, loads pathlib at start-up).
_PROBE = """
import sys
before = set(sys.modules)
import json
from envelope.cli.main import main
code = main(sys.argv[1:])
print(json.dumps([code, sorted(set(sys.modules) - before)]))
"""


def _modules_after(*argv: str) -> tuple[int, set[str]]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, check=True,
                          env=os.environ)
    code, modules = json.loads(proc.stdout.decode().splitlines()[-1])
    return code, set(modules)


def _subcommands(parser) -> set[str]:  # type: ignore[no-untyped-def]
    return {name for action in parser._subparsers._group_actions for name in action.choices}


def test_every_command_is_registered_by_the_module_named_for_it():
    assert _subcommands(build_parser()) == set(COMMAND_MODULES)
    for command in COMMAND_MODULES:
        assert command in _subcommands(build_parser([command, "--help"]))


@pytest.mark.parametrize("argv", [[], ["--help"], ["--version"], ["bogus"], ["--as"], ["--a", "x", "keys"]])
def test_anything_but_a_known_command_gets_every_command(argv):
    assert _subcommands(build_parser(argv)) == set(COMMAND_MODULES)


def test_a_principal_before_the_command_still_picks_only_its_parsers():
    assert _subcommands(build_parser(["--as", "alice", "inspect", "f"])) == {"encrypt-file", "decrypt-file",
                                                                              "inspect"}
    assert _subcommands(build_parser(["--as=alice", "s3", "cp"])) == {"s3"}


def _modules_of_a_round_trip(tmp_path: Path) -> list[set[str]]:
    """The modules loaded by encrypt-file, then by decrypt-file, of a small file with the local keystore."""
    plain = tmp_path / "p"
    plain.write_bytes(os.urandom(4096))
    code, encrypting = _modules_after("encrypt-file", str(plain), "-q")
    assert code == 0
    code, decrypting = _modules_after("decrypt-file", f"{plain}.envelope", "-o", str(tmp_path / "back"), "-q")
    assert code == 0 and (tmp_path / "back").read_bytes() == plain.read_bytes()
    return [encrypting, decrypting]


def _among(modules: set[str], names: tuple[str, ...]) -> set[str]:
    return {m for m in modules for bad in names if m == bad or m.startswith(bad + ".")}


def test_encrypting_and_decrypting_with_the_local_keystore_import_no_other_commands_code(tmp_path: Path):
    for modules in _modules_of_a_round_trip(tmp_path):
        assert _among(modules, NOT_FOR_FILES) == set()


def test_the_local_keystore_encrypts_and_decrypts_without_pathlib_tempfile_or_hashlib(tmp_path: Path):
    for modules in _modules_of_a_round_trip(tmp_path):
        assert _among(modules, NOT_FOR_THE_LOCAL_KEYSTORE) == set()


@pytest.mark.skipif(not native_available(), reason="the native engine is not built here")
def test_the_native_engine_encrypts_and_decrypts_without_loading_the_reference_engine_or_pyca(tmp_path: Path):
    for modules in _modules_of_a_round_trip(tmp_path):
        assert "envelope.engines.native" in modules
        assert _among(modules, NOT_WITH_THE_NATIVE_ENGINE) == set()


def test_a_symmetric_key_encrypts_and_decrypts_without_loading_rsa_or_ec_code(tmp_path: Path):
    for modules in _modules_of_a_round_trip(tmp_path):
        assert _among(modules, NOT_FOR_SYMMETRIC_KEYS) == set()


def test_a_known_key_encrypts_and_decrypts_without_importing_uuid(tmp_path: Path):
    """uuid imports platform: only making a key needs it, not using one (the first run made the key)."""
    _, decrypting = _modules_of_a_round_trip(tmp_path)
    code, encrypting = _modules_after("encrypt-file", str(tmp_path / "p"), "-o", str(tmp_path / "again"), "-q")
    assert code == 0
    assert "uuid" not in encrypting and "uuid" not in decrypting


def test_a_key_id_is_encoded_as_the_uuid_module_encodes_it():
    for _ in range(200):
        key_id = str(uuid.uuid4())
        assert key_id_bytes(key_id) == uuid.UUID(key_id).bytes
        assert key_id_bytes(key_id.upper()) == uuid.UUID(key_id).bytes
        assert key_id_from_bytes(uuid.UUID(key_id).bytes, False) == key_id
    with pytest.raises(ValueError):
        key_id_bytes("not-a-key-id")
    with pytest.raises(ValueError):
        key_id_from_bytes(b"short", False)
