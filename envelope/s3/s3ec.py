"""Reading objects written by AWS's S3 Encryption Client (its V2 and V3 GCM formats, KMS-wrapped).

:class:`~envelope.s3.client.EncryptedS3Client` hands an object here when its
metadata is the S3EC's (:mod:`envelope.s3.s3ec_format`).  The data key is
unwrapped by the client's own ``aws-kms:`` keyrings: KMS Decrypt names the
keyring's key and carries the stored encryption context (reserved pair
included), and the caller's context must be a subset of the stored one.

The whole object is a single AES-GCM message with one tag at its end, so no
byte can be trusted before the last one is read.  A GET therefore decrypts as
a stream into a temporary file (memory up to 8 MiB, then disk), checks the tag,
and only then returns the file; a download decrypts beside the destination and
renames after the tag verified.  A failed tag is an AuthenticationError and
nothing is released.

A ranged GET cannot be authenticated (the tag covers every byte), so it is
refused unless the client was made with ``legacy_unauthenticated_ranges=True``.
Then the range is decrypted with AES-CTR from the counter GCM used for its
first block (GCM's keystream for a 12-byte IV starts at counter IV || 2), and
the bytes are returned *unverified*: anyone able to write the object can flip
plaintext bits in them undetected.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..context import require_subset
from ..exceptions import AuthenticationError, FormatError, KeyringError, UsageError
from ..format import WrappedKey
from . import s3ec_format as fmt

BLOCK = 1 << 20
SPOOL_BYTES = 8 << 20
LEGACY_RANGE_FLAG = "legacy_unauthenticated_ranges=True (CLI: --legacy-unauthenticated-range)"


def load(client: Any, metadata: dict[str, str], bucket: str, key: str, etag_args: dict[str, Any] | None = None
         ) -> fmt.S3ecObject:
    """The object's S3EC fields, from its metadata (and its instruction file for a V3 object that has one)."""
    where = f"s3://{bucket}/{key}"
    try:
        if fmt.needs_instruction_file(metadata):
            metadata = fmt.merge_instruction_file(metadata, _instruction_file(client, bucket, key))
        return fmt.parse(metadata)
    except FormatError as exc:
        raise FormatError(f"{where}: {exc}") from None


def plaintext_view(response: dict[str, Any], bucket: str, key: str) -> dict[str, Any]:
    """A HeadObject/GetObject response as envelope shows its own objects: plaintext length, S3EC fields hidden."""
    metadata = dict(response.get("Metadata") or {})
    try:
        version = fmt.version_of(metadata)
    except FormatError as exc:
        raise FormatError(f"s3://{bucket}/{key}: {exc}") from None
    stored = response.get("ContentLength")
    response["EncryptedContentLength"] = stored
    if stored is not None and "ContentRange" not in response:
        size = int(stored) - fmt.TAG_SIZE
        if size < 0:
            raise FormatError(f"s3://{bucket}/{key}: {stored} bytes is too short for an AES-GCM object")
        given = metadata.get(fmt.PLAINTEXT_LENGTH)
        if given is not None and given != str(size):
            raise FormatError(f"s3://{bucket}/{key}: its metadata says {given[:20]} bytes of plaintext, "
                              f"its length {size}")
        response["ContentLength"] = size
    response["Metadata"] = {k: v for k, v in metadata.items() if k not in fmt.NAMES}
    response["EnvelopeObjectFormat"] = version
    response.pop("ContentRange", None)
    return response


def summary(head: dict[str, Any], bucket: str, key: str) -> dict[str, Any]:
    """What ``envelope s3 inspect`` shows of an S3EC object (no key needed, no instruction file read)."""
    metadata = dict(head.get("Metadata") or {})
    view = plaintext_view(dict(head), bucket, key)
    in_file = fmt.needs_instruction_file(metadata)
    context = None if in_file else load(None, metadata, bucket, key).user_context
    return {"format": view["EnvelopeObjectFormat"], "key_commitment": view["EnvelopeObjectFormat"] == fmt.V3,
            "encryption_context": context, "metadata_in_instruction_file": in_file,
            "plaintext_size": view["ContentLength"], "stored_size": view["EncryptedContentLength"]}


def unwrap_content_key(s3: Any, obj: fmt.S3ecObject, where: str) -> bytearray:
    """The content key, through the client's aws-kms keyrings; the caller's context checked first."""
    require_subset(s3.context, obj.user_context)
    from ..keyrings.aws_kms import PROVIDER, AwsKmsKeyring

    keyrings = [k for k in s3.decryption_keyring.keyrings if isinstance(k, AwsKmsKeyring)]
    if not keyrings:
        given = ", ".join(k.reference for k in s3.decryption_keyring.keyrings)
        raise UsageError(f"{where} was written by the S3 Encryption Client with an AWS KMS key; open it with "
                         f"aws-kms:ARN (given: {given})")
    failures = []
    for keyring in keyrings:
        try:
            data_key = keyring.unwrap_data_key(WrappedKey(PROVIDER, keyring.key_arn(), obj.wrapped_key),
                                               obj.context)
        except KeyringError as exc:
            failures.append(str(exc))
            continue
        try:
            return bytearray(fmt.content_key(obj, data_key))
        finally:
            data_key[:] = bytes(len(data_key))
    raise KeyringError(f"{where}: could not unwrap its data key: " + "; ".join(failures))


def decrypt_gcm(obj: fmt.S3ecObject, key: bytes | bytearray, read: Callable[[int], bytes], stored: int,
                write: Callable[[bytes], Any], where: str) -> int:
    """Decrypt *stored* bytes (ciphertext, then the 16-byte tag) from *read* into *write*; the plaintext length.

    What *write* receives is unverified until this returns: callers write to a
    private temporary file and release it only then.
    """
    if stored < fmt.TAG_SIZE:
        raise FormatError(f"{where}: {stored} bytes is too short for an AES-GCM object")
    decryptor = Cipher(algorithms.AES(bytes(key)), modes.GCM(obj.iv)).decryptor()
    if obj.aad:
        decryptor.authenticate_additional_data(obj.aad)
    left = stored - fmt.TAG_SIZE
    while left:
        block = read(min(BLOCK, left))
        if not block:
            raise FormatError(f"{where}: the object ended {left + fmt.TAG_SIZE} bytes early")
        left -= len(block)
        write(decryptor.update(block))
    tag = _read_exactly(read, fmt.TAG_SIZE, where)
    if read(1):
        raise FormatError(f"{where}: the object is longer than its length")
    try:
        decryptor.finalize_with_tag(tag)
    except InvalidTag:
        raise AuthenticationError(f"{where} failed authentication (its AES-GCM tag): the wrong data key, or "
                                  "the object or its metadata was changed") from None
    return stored - fmt.TAG_SIZE


def get_whole(s3: Any, response: dict[str, Any], bucket: str, key: str) -> dict[str, Any]:
    """GetObject of a whole S3EC object: decrypted into a temporary file, returned once its tag verified."""
    where = f"s3://{bucket}/{key}"
    body = response["Body"]
    plain = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    try:
        obj = load(s3.wrapped_client, dict(response.get("Metadata") or {}), bucket, key)
        view = plaintext_view(dict(response), bucket, key)  # its checks of the lengths, before any work
        content_key = unwrap_content_key(s3, obj, where)
        try:
            decrypt_gcm(obj, content_key, body.read, int(view["EncryptedContentLength"]), plain.write, where)
        finally:
            content_key[:] = bytes(len(content_key))
    except BaseException:
        plain.close()
        raise
    finally:
        body.close()
    plain.seek(0)
    view["Body"] = plain
    return view


def get_range(s3: Any, head: dict[str, Any], bucket: str, key: str, text: str,
              kwargs: dict[str, Any]) -> dict[str, Any]:
    """A ranged GetObject: refused, or (legacy mode) decrypted with AES-CTR and returned unauthenticated."""
    from .ranged import parse_range

    where = f"s3://{bucket}/{key}"
    if not s3.legacy_unauthenticated_ranges:
        raise UsageError(f"{where} was written by the S3 Encryption Client: one AES-GCM tag covers the whole "
                         f"object, so a range of it cannot be authenticated. GET it whole, or accept unverified "
                         f"bytes with {LEGACY_RANGE_FLAG}")
    obj = load(s3.wrapped_client, dict(head.get("Metadata") or {}), bucket, key)
    size = int(head["ContentLength"]) - fmt.TAG_SIZE
    if size < 0:
        raise FormatError(f"{where}: too short for an AES-GCM object")
    first, last = parse_range(text, size, bucket, key)
    block = first // 16
    start = block * 16
    pinned = {k: v for k, v in kwargs.items() if k == "VersionId"}
    response = s3.wrapped_client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{last}",
                                            IfMatch=head["ETag"], **pinned)
    body = response["Body"]
    try:
        data = _read_exactly(body.read, last - start + 1, where)
    finally:
        body.close()
    content_key = unwrap_content_key(s3, obj, where)
    try:
        # GCM encrypts plaintext block i under counter IV || (i + 2); its sizes never wrap the 32-bit counter.
        counter = obj.iv + (block + 2).to_bytes(4, "big")
        decryptor = Cipher(algorithms.AES(bytes(content_key)), modes.CTR(counter)).decryptor()
        plain = (decryptor.update(data) + decryptor.finalize())[first - start:]
    finally:
        content_key[:] = bytes(len(content_key))
    view = plaintext_view(dict(head), bucket, key)
    view.update(Body=io.BytesIO(plain), ContentLength=len(plain), ContentRange=f"bytes {first}-{last}/{size}",
                EnvelopeUnauthenticated=True)
    return view


def decrypt_downloaded(s3: Any, head: dict[str, Any], sealed: BinaryIO, out: BinaryIO, bucket: str, key: str) -> None:
    """A fetched S3EC object (*sealed*) into *out*, which the caller releases only if this returns."""
    where = f"s3://{bucket}/{key}"
    obj = load(s3.wrapped_client, dict(head.get("Metadata") or {}), bucket, key)
    content_key = unwrap_content_key(s3, obj, where)
    try:
        decrypt_gcm(obj, content_key, sealed.read, os.fstat(sealed.fileno()).st_size, out.write, where)
    finally:
        content_key[:] = bytes(len(content_key))


def _instruction_file(client: Any, bucket: str, key: str) -> bytes:
    """``KEY.instruction``, read with a bound (it is a small JSON object)."""
    name = key + fmt.INSTRUCTION_SUFFIX
    try:
        response = client.get_object(Bucket=bucket, Key=name)
    except Exception as exc:  # botocore's ClientError: say which file is missing, in one line
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise FormatError(f"its metadata is in an instruction file, and s3://{bucket}/{name} could not be read "
                          f"({code})") from None
    body = response["Body"]
    try:
        return bytes(body.read(fmt.MAX_INSTRUCTION_FILE + 1))
    finally:
        body.close()


def _read_exactly(read: Callable[[int], bytes], n: int, where: str) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = read(n - len(out))
        if not data:
            raise FormatError(f"{where}: the object ended early")
        out += data
    return bytes(out)
