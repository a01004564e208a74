"""Client-side encryption for S3 objects: a boto3 S3 client whose objects are envelope files.

:class:`EncryptedS3Client` wraps a boto3 S3 client and keeps its names and
shapes: ``put_object(Bucket=, Key=, Body=, ...)`` encrypts the body before it
leaves the machine (a fresh data key per object, wrapped by the keyring), and
``get_object`` decrypts, including ``Range=`` requests, which fetch and
authenticate only the chunks that cover the range.  Every other argument
(ContentType, Metadata, Tagging, ServerSideEncryption, ACL...) goes to S3 as
given, and every other method is the wrapped client's.

The object body is exactly an envelope v1 file; its metadata says so
(:mod:`envelope.s3.metadata`).  Ranged GETs of an object already opened reuse
its header and data key (:mod:`envelope.s3.header_cache`): one request, no call
to the key manager, while the object's ETag is unchanged.

Nothing unauthenticated is returned: a whole-object GET decrypts into a
spooled temporary file (memory up to 8 MiB, then disk) and returns it only
after the last chunk and the end of the stream verify
(:mod:`envelope.s3.whole_object`); a ranged GET returns
bytes from chunks whose tags verified, and only once the chunk that the
object's length says is last has opened as last, which proves the length
(once per object version while its header is cached).
"""

from __future__ import annotations

import io
import tempfile
from typing import Any, BinaryIO, cast

from .. import api
from ..cache import DataKeyCache
from ..context import EncryptionContext
from ..exceptions import FormatError, UsageError
from ..format import DEFAULT_CHUNK_SIZE, TAG_SIZE
from ..kdf import FileKeys
from ..keyrings.base import refuse_pickle
from ..pipeline import read_into, wait_readable
from ..reader import DecryptingReader, ProvenEnds
from ..stream import encrypt_stream, unwrap_header
from .header_cache import DEFAULT_ENTRIES, DEFAULT_MAX_AGE, HeaderCache, Ident
from .metadata import META_CHUNK, META_SIZE, META_VERSION, plaintext_view, require_envelope
from . import s3ec, s3ec_format, whole_object
from .ranged import FIRST_WINDOW, RangedObject, is_replaced, parse_range
from .s3ec_write import FORMATS as S3EC_FORMATS
from .whole_object import SPOOL_BYTES

FORMAT_ENVELOPE = "envelope"


class EncryptedS3Client:
    """A boto3 S3 client that encrypts on the way up and decrypts on the way down."""

    def __init__(self, client: Any, keys: api.Keys | None = None, *, context: EncryptionContext | None = None,
                 keystore: str | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 header_cache: int = DEFAULT_ENTRIES, header_max_age: float = DEFAULT_MAX_AGE, object_format: str = FORMAT_ENVELOPE,
                 legacy_unauthenticated_ranges: bool = False, cache: DataKeyCache | None = None) -> None:
        """*header_cache*: how many opened objects to keep for ranged GETs (0: none), and for at most
        *header_max_age* seconds.  *object_format*
        ``"s3ec-v2"``/``"s3ec-v3"`` writes AWS's S3 Encryption Client format (see
        :mod:`envelope.s3.s3ec_write`); objects in it are read whatever this says.  *cache* keeps data keys
        unwrapped for reading (:mod:`envelope.cache`); encrypting always asks for a fresh one.  A range of such an
        object cannot be authenticated: *legacy_unauthenticated_ranges* allows it (see :mod:`envelope.s3.s3ec`)."""
        if object_format not in (FORMAT_ENVELOPE, *S3EC_FORMATS):
            raise UsageError(f"unknown object format {object_format!r}: use {FORMAT_ENVELOPE}, "
                             + " or ".join(S3EC_FORMATS))
        self.object_format = object_format
        self.legacy_unauthenticated_ranges = legacy_unauthenticated_ranges
        self._client = client
        self._headers = HeaderCache(header_cache, header_max_age)
        # Final chunks proven, kept with the headers: a cached object's tail costs no GET.
        self._ends = ProvenEnds(max_age=header_max_age) if header_cache > 0 else None
        self._context = dict(context or {})
        self._chunk_size = chunk_size
        self._encrypting = api.encryption_keyring(keys, keystore=keystore)
        self._decrypting = api.decryption_keyring(keys, keystore=keystore, cache=cache)

    # -- what the transfer helpers need ---------------------------------------------------------------

    @property
    def wrapped_client(self) -> Any:
        return self._client

    @property
    def encryption_keyring(self) -> Any:
        return self._encrypting

    @property
    def decryption_keyring(self) -> Any:
        return self._decrypting

    @property
    def context(self) -> dict[str, str]:
        return dict(self._context)

    @property
    def chunk_size(self) -> int:
        return self._chunk_size

    def envelope_metadata(self, plaintext_size: int | None) -> dict[str, str]:
        metadata = {META_VERSION: "1", META_CHUNK: str(self._chunk_size)}
        if plaintext_size is not None:
            metadata[META_SIZE] = str(plaintext_size)
        return metadata

    # -- boto3's transfer methods --------------------------------------------------------------------

    def upload_fileobj(self, Fileobj: Any, Bucket: str, Key: str, ExtraArgs: dict[str, Any] | None = None,  # noqa: N803
                       Callback: Any = None, Config: Any = None) -> None:
        from .transfer import remaining, upload

        if self.object_format in S3EC_FORMATS:  # one GCM stream: progress only once it is all sent
            from .s3ec_write import upload as upload_s3ec

            size = remaining(Fileobj)
            upload_s3ec(self, self.object_format, Fileobj, Bucket, Key, ExtraArgs, Config)
            if Callback is not None and size:
                Callback(size)
            return
        upload(self, Fileobj, Bucket, Key, ExtraArgs, Config, Callback)

    def upload_file(self, Filename: str, Bucket: str, Key: str, ExtraArgs: dict[str, Any] | None = None,  # noqa: N803
                    Callback: Any = None, Config: Any = None) -> None:
        with open(Filename, "rb") as fh:
            self.upload_fileobj(fh, Bucket, Key, ExtraArgs=ExtraArgs, Callback=Callback, Config=Config)

    def download_file(self, Bucket: str, Key: str, Filename: str, ExtraArgs: dict[str, Any] | None = None,  # noqa: N803
                      Callback: Any = None, Config: Any = None) -> None:
        from .transfer import download_file

        download_file(self, Bucket, Key, Filename, ExtraArgs, Config, Callback)

    def download_fileobj(self, Bucket: str, Key: str, Fileobj: Any,  # noqa: N803
                         ExtraArgs: dict[str, Any] | None = None, Callback: Any = None, Config: Any = None) -> None:
        from .transfer import download_fileobj

        download_fileobj(self, Bucket, Key, Fileobj, ExtraArgs, Config, Callback)

    def download_stream(self, Bucket: str, Key: str, Fileobj: Any,  # noqa: N803
                        ExtraArgs: dict[str, Any] | None = None, Callback: Any = None) -> None:
        """Decrypt an object into a stream that cannot be taken back (a pipe, stdout), as ``decrypt-file -o -``.

        One GET, read in order; each chunk is written once its tag verified,
        so nothing waits on disk.  An object cut short or damaged raises after
        the chunks before the damage were written: the caller must report the
        failure (an exit status), since the reader has those bytes.  An S3
        Encryption Client object has one tag for its whole body, so it is
        written only once all of it verified.  *Callback* is told of plaintext
        bytes as they are written.
        """
        whole_object.download_stream(self, Bucket, Key, Fileobj, ExtraArgs, Callback)

    def copy_object(self, *, Bucket: str, Key: str, CopySource: Any, **kwargs: Any) -> Any:  # noqa: N803
        """CopyObject: the encrypted body is copied as it is (no key needed); a REPLACE of the
        metadata keeps envelope's own fields, without which the copy could not be read by range."""
        if kwargs.get("MetadataDirective") == "REPLACE":
            source = CopySource if isinstance(CopySource, dict) else dict(
                zip(("Bucket", "Key"), str(CopySource).lstrip("/").split("/", 1)))
            head = self._client.head_object(Bucket=source["Bucket"], Key=source["Key"])
            kept = {k: v for k, v in head.get("Metadata", {}).items()
                    if k.startswith(META_VERSION) or k in s3ec_format.NAMES}
            kwargs["Metadata"] = {**dict(kwargs.get("Metadata") or {}), **kept}
        return self._client.copy_object(Bucket=Bucket, Key=Key, CopySource=CopySource, **kwargs)

    def rewrap_object(self, *, Bucket: str, Key: str, keys: api.Keys) -> dict[str, Any]:  # noqa: N803
        """New wrapped data keys under *keys* for an object; its body is copied inside S3, never decrypted.

        The data key is unwrapped with this client's keys; the object keeps its
        metadata, content type and tags.
        """
        from .rewrap import rewrap_object

        return rewrap_object(self._client, Bucket, Key, self._decrypting, api.encryption_keyring(keys),
                             context=self._context)

    def __reduce_ex__(self, protocol: object) -> Any:
        raise refuse_pickle("an EncryptedS3Client")

    def __getattr__(self, name: str) -> Any:
        """Every method not defined here is the wrapped client's (list_objects_v2, create_bucket...)."""
        return getattr(self._client, name)

    def put_object(self, *, Bucket: str, Key: str, Body: Any = b"", **kwargs: Any) -> Any:  # noqa: N803 - boto3's
        if self.object_format in S3EC_FORMATS:
            from .s3ec_write import put_object

            return put_object(self, self.object_format, Bucket, Key, Body, kwargs)
        source = io.BytesIO(Body.encode() if isinstance(Body, str) else bytes(Body)) \
            if isinstance(Body, (bytes, bytearray, memoryview, str)) else Body
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as sealed:
            counter = _Counter(source)
            header = encrypt_stream(cast(BinaryIO, counter), cast(BinaryIO, sealed), self._encrypting, context=self._context,
                                    chunk_size=self._chunk_size)
            sealed.seek(0)
            metadata = dict(kwargs.pop("Metadata", None) or {})
            metadata.update({META_VERSION: str(header.version), META_SIZE: str(counter.count),
                             META_CHUNK: str(header.chunk_size)})
            kwargs.pop("ContentLength", None)  # the plaintext's; S3 gets the ciphertext's from the body
            kwargs.pop("ContentMD5", None)
            return self._client.put_object(Bucket=Bucket, Key=Key, Body=sealed, Metadata=metadata, **kwargs)

    def get_object(self, *, Bucket: str, Key: str, Range: str | None = None,  # noqa: N803 - boto3's names
                   **kwargs: Any) -> dict[str, Any]:
        if Range is None:
            return whole_object.get_whole(self, Bucket, Key, kwargs)
        return self._get_range(Bucket, Key, Range, kwargs)

    def head_object(self, *, Bucket: str, Key: str, **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        """HeadObject, with ContentLength the plaintext's (the stored length is in EncryptedContentLength)."""
        response = dict(self._client.head_object(Bucket=Bucket, Key=Key, **kwargs))
        return whole_object.response_view(response, Bucket, Key)

    # -- internals -----------------------------------------------------------------------------------

    def open_object(self, bucket: str, key: str, version_id: str | None = None) -> DecryptingReader:
        """A seekable plaintext view of one envelope object version, for reads at any offset.

        Every GET names the ETag first read, so an object replaced while it is
        read fails (412) instead of mixing versions.  A cached header costs one
        HeadObject to confirm the object is still that version (its length is
        what a caller sizes its reads by) and no key manager call; a miss, a GET
        of the first window and one of the final chunk, which proves the length.
        """
        extra = {"VersionId": version_id} if version_id else {}
        ident: Ident = (bucket, key, version_id)
        cached = self._cached_reader(ident, extra)
        if cached is not None:
            head = self._client.head_object(Bucket=bucket, Key=key, **extra)
            if head.get("ETag") == cast(RangedObject, cached.source).etag:
                return cached
            cached.close()
            self._headers.drop(ident)
        source = RangedObject.first(self._client, bucket, key, window=FIRST_WINDOW, extra=extra)
        require_envelope(source.response.get("Metadata") or {}, bucket, key)  # AWS's format: no authenticated ranges
        reader = self._open_first(source, ident)
        source.window = reader.header.chunk_size + TAG_SIZE
        return reader

    def forget(self, bucket: str, key: str, version_id: str | None = None) -> None:
        """Drop an object's cached header (it was replaced, or is about to be)."""
        self._headers.drop((bucket, key, version_id))

    def _get_range(self, bucket: str, key: str, text: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """A miss costs a GET of the first window (header, length, ETag, metadata; often the range
        itself) and one more for chunks beyond it; a hit, one GET of the chunks."""
        from botocore.exceptions import ClientError

        ident: Ident | None = None  # the caller's conditions or SSE-C fields: no shortcuts
        if not set(kwargs) - {"VersionId"}:
            ident = (bucket, key, kwargs.get("VersionId"))
            reader = self._cached_reader(ident, kwargs)
            if reader is not None:
                try:
                    return self._read_range(reader, bucket, key, text)
                except ClientError as exc:
                    if not is_replaced(exc):
                        raise
                    self._headers.drop(ident)  # the object was replaced: open the new one
        source = RangedObject.first(self._client, bucket, key, window=FIRST_WINDOW, extra=kwargs)
        metadata = source.response.get("Metadata") or {}
        if s3ec_format.is_s3ec(metadata):
            return s3ec.get_range(self, {**source.response, "ContentLength": source.size}, bucket, key, text, kwargs)
        require_envelope(metadata, bucket, key)
        return self._read_range(self._open_first(source, ident), bucket, key, text)

    def _cached_reader(self, ident: Ident, extra: dict[str, Any]) -> DecryptingReader | None:
        hit = self._headers.open(ident, self._context)
        if hit is None:
            return None
        entry, keys = hit
        source = RangedObject(self._client, ident[0], ident[1], entry.size, entry.etag,
                              window=entry.header.chunk_size + TAG_SIZE, extra=extra)
        # An entry is kept only once its object's final chunk verified: the length is proven.
        return self._reader(source, (entry.header, keys), length_proven=True, ends=self._ends)

    def _open_first(self, source: RangedObject, ident: Ident | None) -> DecryptingReader:
        """Open an object read by :meth:`RangedObject.first`; with *ident*, keep its header and key."""
        if ident is None:
            return self._reader(source, None)
        header, keys, data_key = unwrap_header(cast(BinaryIO, source), self._decrypting,
                                               required_context=self._context)
        try:
            # Proves the length: opens the final chunk (unless this very ciphertext's already opened).
            reader = self._reader(source, (header, keys), ends=self._ends)
            self._headers.put(ident, source.etag, source.size, header, data_key)
        finally:
            data_key[:] = bytes(len(data_key))
        return reader

    def _reader(self, source: RangedObject, opened: tuple[Any, FileKeys] | None, *,
                length_proven: bool = False, ends: ProvenEnds | None = None) -> DecryptingReader:
        """The plaintext view of *source*; unless *length_proven* (or in *ends*), its final chunk is fetched
        and opened now."""
        return DecryptingReader(cast(BinaryIO, source), self._decrypting, required_context=self._context,
                                opened=opened, length_proven=length_proven, ends=ends)

    def _read_range(self, reader: DecryptingReader, bucket: str, key: str, text: str) -> dict[str, Any]:
        source = cast(RangedObject, reader.source)
        source.window = reader.header.chunk_size + TAG_SIZE  # from here on, just the chunks asked for
        try:
            size = reader.size  # from the header and the object's length; the metadata's, when given, must agree
            first, last = parse_range(text, size, bucket, key)
            reader.seek(first)
            data = _read_exactly(reader, last - first + 1)
        finally:
            reader.close()
        metadata = source.response.get("Metadata") or {}
        if META_SIZE in metadata and int(metadata[META_SIZE]) != size:
            raise FormatError(f"s3://{bucket}/{key}: its metadata says {metadata[META_SIZE]} bytes of "
                              f"plaintext, its length {size}")
        response = plaintext_view(dict(source.response), bucket, key)
        response.update(Body=io.BytesIO(data), ContentLength=len(data), ContentRange=f"bytes {first}-{last}/{size}",
                        EnvelopeBytesFetched=source.fetched, EnvelopeRequests=source.requests)
        return response


def _read_exactly(reader: DecryptingReader, n: int) -> bytes:
    out = bytearray(n)
    view, got = memoryview(out), 0
    while got < n:
        k = reader.readinto(view[got:])
        if not k:
            raise FormatError("the object ended before the requested range")
        got += k
    return bytes(out)


class _Counter(io.RawIOBase):
    """Counts the plaintext read from the caller's body (its length goes into the metadata)."""

    def __init__(self, src: Any) -> None:
        super().__init__()
        self._src, self.count = src, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if hasattr(self._src, "readinto"):
            n = read_into(self._src, view)
        else:
            while (data := self._src.read(len(view))) is None:  # non-blocking, nothing yet: not the end
                wait_readable(self._src)
            n = len(data)
            view[:n] = data
        self.count += n
        return n
