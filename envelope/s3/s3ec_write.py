"""Writing objects in the S3 Encryption Client's format, so that AWS's clients can read them.

Used when :class:`~envelope.s3.client.EncryptedS3Client` is made with
``object_format="s3ec-v2"`` or ``"s3ec-v3"`` (V3 is the key-committing one,
the default of AWS's current clients; V2 is what older ones read).  The data key
comes from KMS GenerateDataKey under the one ``aws-kms:`` key given, with the
client's context plus the reserved ``aws:x-amz-cek-alg`` pair; the format holds
a single wrapped key, so several keys, or keys of other kinds, are refused.

The body is one AES-GCM stream, sealed in order.  PutObject spools the
ciphertext (memory up to 8 MiB, then disk); a large upload is a multipart
upload whose parts are cut from that stream and sent by a pool while the next
is being sealed (:class:`~envelope.s3.multipart.MultipartSink`), the tag ending
the last part.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tempfile
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..exceptions import UsageError
from . import s3ec_format as fmt
from .multipart import MIN_PART_SIZE, multipart_upload

FORMATS = (fmt.V2, fmt.V3)
BLOCK = 1 << 20
SPOOL_BYTES = 8 << 20


class Sealer:
    """One object's data key, metadata and running AES-GCM encryptor."""

    def __init__(self, s3: Any, version: str, plaintext_length: int | None) -> None:
        from ..keyrings.aws_kms import AwsKmsKeyring

        keyrings = s3.encryption_keyring.keyrings
        if len(keyrings) != 1 or not isinstance(keyrings[0], AwsKmsKeyring):
            given = ", ".join(k.reference for k in keyrings)
            raise UsageError(f"the {version} format wraps the data key with exactly one AWS KMS key "
                             f"(aws-kms:ARN or aws-kms:alias/NAME); given: {given}")
        context = fmt.kms_context(version, s3.context)
        data_key, wrapped = keyrings[0].generate_data_key(context)
        try:
            if version == fmt.V2:
                iv, key, message_id, commitment = os.urandom(fmt.IV_SIZE), bytes(data_key), None, None
            else:
                message_id = os.urandom(fmt.MESSAGE_ID_SIZE)
                iv = fmt.V3_IV
                key, commitment = fmt.derive_v3(data_key, message_id)
        finally:
            data_key[:] = bytes(len(data_key))
        self.object = fmt.S3ecObject(version, wrapped.ciphertext, context, iv, message_id, commitment,
                                     plaintext_length)
        self._encryptor = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
        if self.object.aad:
            self._encryptor.authenticate_additional_data(self.object.aad)
        self.count = 0

    def update(self, data: bytes) -> bytes:
        self.count += len(data)
        return self._encryptor.update(data)

    def finalize(self) -> bytes:
        """The last bytes and the tag."""
        return self._encryptor.finalize() + self._encryptor.tag


def put_object(s3: Any, version: str, bucket: str, key: str, body: Any, kwargs: dict[str, Any]) -> Any:
    source = io.BytesIO(body.encode() if isinstance(body, str) else bytes(body)) \
        if isinstance(body, (bytes, bytearray, memoryview, str)) else body
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as sealed:
        sealer = Sealer(s3, version, None)
        for block in iter(lambda: source.read(BLOCK), b""):
            sealed.write(sealer.update(block))
        sealed.write(sealer.finalize())
        sealed.seek(0)
        described = dataclasses.replace(sealer.object, plaintext_length=sealer.count)
        metadata = {**dict(kwargs.pop("Metadata", None) or {}), **described.to_metadata()}
        kwargs.pop("ContentLength", None)  # the plaintext's; S3 gets the ciphertext's from the body
        kwargs.pop("ContentMD5", None)
        return s3.wrapped_client.put_object(Bucket=bucket, Key=key, Body=sealed, Metadata=metadata, **kwargs)


def upload(s3: Any, version: str, fileobj: Any, bucket: str, key: str, extra: dict[str, Any] | None,
           config: Any) -> None:
    """upload_fileobj in the S3EC format: one PutObject below the threshold, else a parallel multipart upload."""
    from .transfer import remaining, settings

    threshold, part, concurrency = settings(config)
    extra = dict(extra or {})
    size = remaining(fileobj)
    if size is not None and size < threshold:
        put_object(s3, version, bucket, key, fileobj, extra)
        return
    sealer = Sealer(s3, version, size)
    metadata = {**dict(extra.pop("Metadata", None) or {}), **sealer.object.to_metadata()}
    part = max(part, MIN_PART_SIZE)
    with multipart_upload(s3.wrapped_client, bucket, key, part, concurrency, Metadata=metadata, **extra) as sink:
        sink.write(b"")  # no header here: every part but the last is exactly *part* bytes of the one stream
        for block in iter(lambda: fileobj.read(min(part, 8 * BLOCK)), b""):
            sink.write(sealer.update(block))
        sink.write(sealer.finalize())
        if size is not None and sealer.count != size:
            raise UsageError(f"the source changed size while being uploaded ({size} bytes, then {sealer.count})")
