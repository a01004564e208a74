"""AWS Encryption SDK for Python, streaming, with a raw AES-256 wrapping key: the SDK's defaults otherwise.

Defaults are what a user gets without tuning: 4 KiB frames and the signed
suite (AES-256-GCM, HKDF-SHA-512, key commitment, ECDSA P-384).

    python esdk_stream.py enc|dec KEY_FILE IN OUT
"""

import sys

import aws_encryption_sdk
from aws_encryption_sdk.identifiers import CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKeyProvider

READ = 1 << 20


class FileKeyProvider(RawMasterKeyProvider):
    """The key id is the key file's path; the key is its 32 bytes."""

    provider_id = "envelope-bench"

    def _get_raw_key(self, key_id):
        with open(key_id.decode() if isinstance(key_id, bytes) else key_id, "rb") as fh:
            return WrappingKey(wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
                               wrapping_key=fh.read(), wrapping_key_type=EncryptionKeyType.SYMMETRIC)


def main() -> None:
    mode, key_file, src, dst = sys.argv[1:5]
    provider = FileKeyProvider()
    provider.add_master_key(key_file)
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        with client.stream(mode="e" if mode == "enc" else "d", source=fin, key_provider=provider) as stream:
            for block in iter(lambda: stream.read(READ), b""):
                fout.write(block)


if __name__ == "__main__":
    main()
