"""Fuzz target: the local KMS ciphertext blob parser (envelope.kms.crypto.blob.parse).

blob.py promises FormatError and nothing else, before any key lookup.  A blob
that parses must re-encode to its own bytes (the prefix is authenticated as
AAD, so a second encoding would be a second valid blob), and its AAD must be
computable.
"""

from __future__ import annotations

import sys

from envelope.exceptions import FormatError
from envelope.kms.crypto import blob

NAME = "kms_blob"
ALLOWED = (FormatError,)
MAX_LEN = blob.MAX_BLOB_SIZE + 64


def check(data: bytes) -> None:
    parsed = blob.parse(data)
    assert parsed.encode() == data, "a parsed blob does not re-encode to its own bytes"
    assert parsed.aad({"purpose": "fuzz"}).startswith(b"envelope local-kms blob v1\x00")


def seeds() -> list[bytes]:
    """Blobs shaped as Encrypt makes them, from the vectors' ids, nonces and sealed keys."""
    from harness import vectors

    out = []
    for v in vectors():
        if "file_id" not in v:
            continue
        file_id = bytes.fromhex(v["file_id"])
        for wk in v.get("wrapped_keys", []):
            sealed = bytes.fromhex(wk["blob"])[13:] or b"\0" * 17
            nonce = bytes.fromhex(wk.get("wrap_nonce") or "00" * 12)
            backing = 1 + file_id[16] % 3
            for version in (blob.BLOB_VERSION, blob.BLOB_VERSION_MRK):
                out.append(bytes([version]) + file_id[:16] + backing.to_bytes(4, "big") + nonce + sealed)
    return out


if __name__ == "__main__":
    import harness

    harness.main(sys.modules[__name__])
