"""Fuzz target: key references, as given to --key or api.encrypt(keys=[...]).

The text goes through the registry (envelope.keyrings.registry.resolve, every
scheme's from_reference) and the local keystore's own reference parser
(envelope.kms.model.keys.parse_reference).  Non-UTF-8 bytes arrive as surrogate
escapes, as they do in sys.argv.  Nothing here may reach a network or a
keystore: building a keyring only parses; raw-aes and rsa-public read the named
key file, so the fuzzer runs in a scratch directory holding a few of them.
Refusals are UsageError or KeyringError (a key file that is missing, unreadable
or not a key).
"""

from __future__ import annotations

import os
import sys
import tempfile

from envelope.exceptions import KeyringError, UsageError
from envelope.keyrings.registry import resolve
from envelope.kms.model.keys import parse_reference

NAME = "key_reference"
ALLOWED = (KeyringError, UsageError)
MAX_LEN = 512
#: Special files a path may name; each must be refused quickly and in bounded memory.
SPECIAL_FILES = ("/dev/null", "/dev/zero", "/dev/urandom", "/proc/self/status", "/", ".")


def check(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    try:
        parse_reference(text)
    except UsageError:
        pass
    resolve(text)


def scratch_dir() -> str:
    """A directory with a hex key file, a raw key file, an empty file and a non-key, to chdir into."""
    path = tempfile.mkdtemp(prefix="envelope-fuzz-keys-")
    with open(os.path.join(path, "key.hex"), "w") as f:
        f.write("ab" * 32 + "\n")
    with open(os.path.join(path, "key.bin"), "wb") as f:
        f.write(bytes(range(32)))
    open(os.path.join(path, "empty"), "wb").close()
    for name in ("key.hex", "key.bin", "empty"):
        os.chmod(os.path.join(path, name), 0o600)  # raw-aes refuses a key file others can read
    with open(os.path.join(path, "pub.pem"), "w") as f:
        f.write("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    return path


def seeds() -> list[bytes]:
    from harness import vectors

    refs = {"local:alias/envelope/default", "local:alias/a/b_c-d", "aws-kms:alias/x", "aws-kms-discovery:",
            "aws-kms-discovery:aws:111122223333,444455556666", "raw-aes:key.hex", "raw-aes:key.bin",
            "raw-aes:empty", "rsa-public:pub.pem", "no-scheme", ":empty-scheme", "plugin-x:rest"}
    refs |= {f"{scheme}:{path}" for scheme in ("raw-aes", "rsa-public") for path in SPECIAL_FILES}
    for v in vectors():
        if "file_id" not in v:
            continue
        raw = bytes.fromhex(v["file_id"])
        uuid = f"{raw[:4].hex()}-{raw[4:6].hex()}-{raw[6:8].hex()}-{raw[8:10].hex()}-{raw[10:16].hex()}"
        refs |= {f"local:{uuid}", f"local:mrk-{raw[:16].hex()}", f"local:arn:envelope:kms:local:{raw[16:22].hex()}:key/{uuid}",
                 f"aws-kms:arn:aws:kms:us-east-1:111122223333:key/{uuid}",
                 f"aws-kms:arn:aws-cn:kms:cn-north-1:111122223333:key/mrk-{raw[:16].hex()}"}
        refs |= {f"{wk['provider']}:{wk['key_id']}" for wk in v.get("wrapped_keys", [])}
    return sorted(r.encode("utf-8", "surrogateescape") for r in refs)


if __name__ == "__main__":
    import functools

    import harness
    from envelope.keyrings import registry

    # An unknown scheme makes the registry scan the installed distributions'
    # entry points (tens of milliseconds); they cannot change during a run, so
    # scan once and spend the time on the parsers.
    registry._plugins = functools.lru_cache(maxsize=1)(registry._plugins)
    sys.argv[1:] = [arg if arg.startswith("-") else os.path.abspath(arg) for arg in sys.argv[1:]]  # corpus dirs
    os.chdir(scratch_dir())
    harness.main(sys.modules[__name__])
