"""The object format of AWS's Amazon S3 Encryption Client (S3EC): its V2 and V3 metadata, and its key schedule.

An S3EC object is one AES-256-GCM ciphertext of the whole plaintext followed by
its 16-byte tag; everything needed to open it is in the object's user metadata
(S3 shows each name with ``x-amz-meta-`` in front; boto3's ``Metadata`` without).
envelope reads and writes the two GCM formats with a data key wrapped by AWS
KMS in ``kms+context`` mode:

V2 (AES/GCM/NoPadding, no key commitment)::

    x-amz-key-v2     base64 of the KMS ciphertext blob of the data key
    x-amz-wrap-alg   kms+context
    x-amz-matdesc    JSON object: the KMS encryption context
    x-amz-iv         base64 of the random 12-byte GCM IV
    x-amz-cek-alg    AES/GCM/NoPadding
    x-amz-tag-len    128
    x-amz-unencrypted-content-length   (optional) the plaintext's length

    The data key is the content key; GCM runs with no AAD.

V3 (suite 0x0073, ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY, key-committing)::

    x-amz-c   115 (the suite id in decimal)
    x-amz-3   base64 of the KMS ciphertext blob of the data key
    x-amz-w   12 (kms+context)
    x-amz-t   JSON object: the KMS encryption context
    x-amz-i   base64 of the 28-byte message id
    x-amz-d   base64 of the 28-byte key commitment

    HKDF-SHA512 with the message id as salt and the data key as input gives,
    with info = suite id bytes (00 73) + "DERIVEKEY", the 32-byte content key,
    and with info = 00 73 + "COMMITKEY", the 28-byte commitment, which must
    equal x-amz-d (compared in constant time) before any content is decrypted.
    GCM then runs with an IV of twelve 0x01 bytes and the AAD 00 73.

In both, the KMS encryption context holds the caller's pairs plus the reserved
pair ``aws:x-amz-cek-alg`` naming the content algorithm (``AES/GCM/NoPadding``
or ``115``), so KMS refuses to unwrap the key under a relabelled algorithm.

Not supported (a :class:`FormatError` says so): V1 objects, AES-CBC content,
and data keys wrapped by a raw AES or RSA key rather than KMS.  V1/V2 objects
whose metadata lives in an instruction file are not even recognised: nothing
in the object marks them.  A V3 object whose key metadata lives in its instruction file is marked (it has
x-amz-c, x-amz-d and x-amz-i but no x-amz-3) and is read through
:func:`merge_instruction_file`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.hashes import SHA512
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..exceptions import AuthenticationError, FormatError, UsageError

V2 = "s3ec-v2"
V3 = "s3ec-v3"

# V1/V2 names
KEY_V1 = "x-amz-key"
KEY_V2 = "x-amz-key-v2"
WRAP_ALG = "x-amz-wrap-alg"
MATDESC = "x-amz-matdesc"
IV_NAME = "x-amz-iv"
CEK_ALG = "x-amz-cek-alg"
TAG_LEN = "x-amz-tag-len"
PLAINTEXT_LENGTH = "x-amz-unencrypted-content-length"
INSTRUCTION_MARK = "x-amz-crypto-instr-file"
# V3 names (compressed)
CIPHER_V3 = "x-amz-c"
KEY_V3 = "x-amz-3"
MATDESC_V3 = "x-amz-m"
CONTEXT_V3 = "x-amz-t"
WRAP_V3 = "x-amz-w"
COMMITMENT_V3 = "x-amz-d"
MESSAGE_ID_V3 = "x-amz-i"

#: Every metadata name the format owns (kept on copies, hidden from callers' Metadata).
NAMES = frozenset({KEY_V1, KEY_V2, WRAP_ALG, MATDESC, IV_NAME, CEK_ALG, TAG_LEN, PLAINTEXT_LENGTH, INSTRUCTION_MARK,
                   CIPHER_V3, KEY_V3, MATDESC_V3, CONTEXT_V3, WRAP_V3, COMMITMENT_V3, MESSAGE_ID_V3})
#: What an instruction file may hold; the V3 content fields must stay in the object's own metadata.
INSTRUCTION_NAMES = NAMES - {CIPHER_V3, COMMITMENT_V3, MESSAGE_ID_V3, PLAINTEXT_LENGTH, INSTRUCTION_MARK}
INSTRUCTION_SUFFIX = ".instruction"
ENVELOPE_MARK = "envelope"  # envelope's own objects' metadata (envelope.s3.client.META_VERSION)

GCM_V2 = "AES/GCM/NoPadding"
SUITE_V3 = "115"
SUITE_V3_ID = b"\x00\x73"
KMS_CONTEXT = "kms+context"
KMS_CONTEXT_V3 = "12"
RESERVED_CONTEXT_KEY = "aws:x-amz-cek-alg"

IV_SIZE = 12
TAG_SIZE = 16
DATA_KEY_SIZE = 32
MESSAGE_ID_SIZE = 28
COMMITMENT_SIZE = 28
V3_IV = b"\x01" * IV_SIZE
MAX_WRAPPED_KEY = 6144  # KMS ciphertext blobs are far smaller; a bound for parsing
MAX_VALUE = 8192  # S3 caps all user metadata at 2 KB; instruction files are bounded by this too
MAX_INSTRUCTION_FILE = 64 << 10


@dataclass(frozen=True)
class S3ecObject:
    """What the metadata says about one S3EC object (nothing secret: the data key is KMS-wrapped)."""

    version: str
    wrapped_key: bytes
    context: dict[str, str]  # the KMS encryption context as stored, the reserved pair included
    iv: bytes
    message_id: bytes | None = None
    commitment: bytes | None = None
    plaintext_length: int | None = None

    @property
    def aad(self) -> bytes:
        return SUITE_V3_ID if self.version == V3 else b""

    @property
    def user_context(self) -> dict[str, str]:
        """The caller's pairs: the stored context without the reserved one."""
        return {k: v for k, v in self.context.items() if k != RESERVED_CONTEXT_KEY}

    def to_metadata(self) -> dict[str, str]:
        context = json.dumps(self.context, sort_keys=True, separators=(",", ":"))
        if self.version == V2:
            metadata = {KEY_V2: _b64(self.wrapped_key), WRAP_ALG: KMS_CONTEXT, MATDESC: context,
                        IV_NAME: _b64(self.iv), CEK_ALG: GCM_V2, TAG_LEN: str(TAG_SIZE * 8)}
            if self.plaintext_length is not None:
                metadata[PLAINTEXT_LENGTH] = str(self.plaintext_length)
            return metadata
        assert self.message_id is not None and self.commitment is not None
        return {CIPHER_V3: SUITE_V3, KEY_V3: _b64(self.wrapped_key), WRAP_V3: KMS_CONTEXT_V3, CONTEXT_V3: context,
                MESSAGE_ID_V3: _b64(self.message_id), COMMITMENT_V3: _b64(self.commitment)}


def is_s3ec(metadata: Mapping[str, str] | None) -> bool:
    """Whether the metadata marks an S3EC object (any version, supported or not).

    An object marked as envelope's own (``envelope``) never is: one set of
    metadata has one reading, whichever call (GET, range, HEAD, download) looks.
    """
    return (metadata is not None and ENVELOPE_MARK not in metadata
            and any(name in metadata for name in (KEY_V1, KEY_V2, KEY_V3, CIPHER_V3)))


def needs_instruction_file(metadata: Mapping[str, str]) -> bool:
    """A V3 object whose wrapped key and context are in ``KEY.instruction``."""
    return CIPHER_V3 in metadata and KEY_V3 not in metadata and not (KEY_V1 in metadata or KEY_V2 in metadata)


def version_of(metadata: Mapping[str, str]) -> str:
    """V2 or V3 from the markers alone; a FormatError for an S3EC object envelope cannot read."""
    present = [name for name in (KEY_V1, KEY_V2, KEY_V3) if name in metadata]
    if len(present) > 1 or (KEY_V2 in metadata and any(n in metadata for n in (CIPHER_V3, COMMITMENT_V3,
                                                                                MESSAGE_ID_V3))):
        raise FormatError(f"S3 Encryption Client metadata names several format versions ({', '.join(present)})")
    if KEY_V1 in metadata:
        raise FormatError("S3 Encryption Client V1 objects (AES-CBC, unauthenticated) are not supported")
    if KEY_V2 in metadata:
        if metadata.get(CEK_ALG) != GCM_V2:
            raise FormatError(f"S3 Encryption Client V2 content algorithm {_shown(metadata.get(CEK_ALG))} is not "
                              f"supported (only {GCM_V2})")
        return V2
    if CIPHER_V3 in metadata:
        if metadata[CIPHER_V3] != SUITE_V3:
            raise FormatError(f"S3 Encryption Client V3 algorithm suite {_shown(metadata[CIPHER_V3])} is not "
                              f"supported (only {SUITE_V3})")
        return V3
    raise FormatError("not S3 Encryption Client metadata")


def parse(metadata: Mapping[str, str]) -> S3ecObject:
    """The object's content metadata, checked field by field; FormatError names the first bad one."""
    version = version_of(metadata)
    if version == V2:
        _expect(metadata, WRAP_ALG, KMS_CONTEXT, "its data key wrapping")
        if TAG_LEN in metadata:
            _expect(metadata, TAG_LEN, str(TAG_SIZE * 8), "its tag length")
        context = _context(_required(metadata, MATDESC), MATDESC)
        obj = S3ecObject(V2, _bytes(metadata, KEY_V2, 1, MAX_WRAPPED_KEY), context,
                         _bytes(metadata, IV_NAME, IV_SIZE, IV_SIZE), plaintext_length=_length(metadata))
        expected = GCM_V2
    else:
        _expect(metadata, WRAP_V3, KMS_CONTEXT_V3, "its data key wrapping (12 is kms+context)")
        context = _context(metadata.get(CONTEXT_V3, "{}"), CONTEXT_V3)
        obj = S3ecObject(V3, _bytes(metadata, KEY_V3, 1, MAX_WRAPPED_KEY), context, V3_IV,
                         message_id=_bytes(metadata, MESSAGE_ID_V3, MESSAGE_ID_SIZE, MESSAGE_ID_SIZE),
                         commitment=_bytes(metadata, COMMITMENT_V3, COMMITMENT_SIZE, COMMITMENT_SIZE),
                         plaintext_length=_length(metadata))
        expected = SUITE_V3
    if context.get(RESERVED_CONTEXT_KEY) != expected:
        raise FormatError(f"its KMS encryption context does not name its content algorithm "
                          f"({RESERVED_CONTEXT_KEY}={expected})")
    return obj


def merge_instruction_file(metadata: Mapping[str, str], data: bytes) -> dict[str, str]:
    """The object's metadata completed by its V3 instruction file (a JSON object of S3EC names)."""
    if len(data) > MAX_INSTRUCTION_FILE:
        raise FormatError(f"its instruction file has {len(data)} bytes; at most {MAX_INSTRUCTION_FILE} are read")
    fields = _json_object(data, "its instruction file")
    stray = sorted(set(fields) - INSTRUCTION_NAMES)
    if stray:
        raise FormatError(f"its instruction file holds names it must not: {', '.join(stray)[:200]}")
    if any(name in fields for name in (KEY_V1, KEY_V2)):
        raise FormatError("its instruction file is not a V3 one, but the object's metadata is V3")
    return {**fields, **metadata}


def derive_v3(data_key: bytes | bytearray, message_id: bytes) -> tuple[bytes, bytes]:
    """(content key, key commitment) of a V3 object, from HKDF-SHA512 keyed by its message id."""
    def expand(label: bytes, length: int) -> bytes:
        return HKDF(SHA512(), length, salt=message_id, info=SUITE_V3_ID + label).derive(bytes(data_key))

    return expand(b"DERIVEKEY", DATA_KEY_SIZE), expand(b"COMMITKEY", COMMITMENT_SIZE)


def content_key(obj: S3ecObject, data_key: bytes | bytearray) -> bytes:
    """The AES-GCM key of the content: V2's data key itself; V3's derived key, once the commitment matches."""
    if len(data_key) != DATA_KEY_SIZE:
        raise FormatError("the unwrapped data key has the wrong size")
    if obj.version == V2:
        return bytes(data_key)
    assert obj.message_id is not None and obj.commitment is not None
    key, commitment = derive_v3(data_key, obj.message_id)
    if not hmac.compare_digest(commitment, obj.commitment):
        raise AuthenticationError("the key commitment (x-amz-d) does not match the data key: "
                                  "the object's metadata was changed, or it was written to mislead")
    return key


def kms_context(version: str, context: Mapping[str, str]) -> dict[str, str]:
    """The KMS encryption context a writer uses: the caller's pairs and the reserved algorithm pair."""
    if RESERVED_CONTEXT_KEY in context:
        raise UsageError(f"{RESERVED_CONTEXT_KEY} is reserved by the S3 Encryption Client format")
    if not all(k.isascii() and v.isascii() for k, v in context.items()):
        raise UsageError("the S3 Encryption Client format needs a US-ASCII encryption context "
                         "(S3 re-encodes other metadata, and AWS's clients refuse it)")
    return {**context, RESERVED_CONTEXT_KEY: GCM_V2 if version == V2 else SUITE_V3}


# -- field parsers --------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _shown(value: str | None) -> str:
    return "(none)" if value is None else repr(value[:40])


def _required(metadata: Mapping[str, str], name: str) -> str:
    value = metadata.get(name)
    if value is None:
        raise FormatError(f"S3 Encryption Client metadata lacks {name}")
    if len(value) > MAX_VALUE:
        raise FormatError(f"S3 Encryption Client metadata {name} is over {MAX_VALUE} characters")
    return value


def _expect(metadata: Mapping[str, str], name: str, wanted: str, what: str) -> None:
    value = metadata.get(name)
    if value != wanted:
        raise FormatError(f"{what} is {_shown(value)} ({name}); only {wanted!r} is supported "
                          f"(the data key must be wrapped by AWS KMS with its encryption context)")


def _bytes(metadata: Mapping[str, str], name: str, low: int, high: int) -> bytes:
    try:
        data = base64.b64decode(_required(metadata, name), validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"S3 Encryption Client metadata {name} is not base64") from None
    if not low <= len(data) <= high:
        size = f"{low}" if low == high else f"{low} to {high}"
        raise FormatError(f"S3 Encryption Client metadata {name} has {len(data)} bytes, not {size}")
    return data


def _length(metadata: Mapping[str, str]) -> int | None:
    text = metadata.get(PLAINTEXT_LENGTH)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 20:
        raise FormatError(f"S3 Encryption Client metadata {PLAINTEXT_LENGTH} is not a length")
    return int(text)


def _context(text: str, name: str) -> dict[str, str]:
    if len(text) > MAX_VALUE:
        raise FormatError(f"S3 Encryption Client metadata {name} is over {MAX_VALUE} characters")
    return _json_object(text.encode("utf-8", "replace"), name)


def _json_object(data: bytes, what: str) -> dict[str, str]:
    """A JSON object of strings; repeated names are refused, so one text has one meaning."""
    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        seen: dict[str, object] = {}
        for key, value in items:
            if key in seen:
                raise FormatError(f"{what} names {key[:40]!r} twice")
            seen[key] = value
        return seen

    try:
        value = json.loads(data, object_pairs_hook=pairs)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise FormatError(f"{what} is not a JSON object of strings")
    return value
