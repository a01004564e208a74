"""The fsspec filesystem ``envelope``: dataframe libraries read and write envelope files and objects directly.

``pd.read_parquet("envelope::s3://lake/sales.parquet", storage_options={"keys": [...]})``
reads only the chunks that hold the columns and row groups asked for, each
authenticated before a byte of it is returned, and puts no plaintext on disk.
The URL's inner part says where the ciphertext lives:

* ``envelope::s3://bucket/key``: envelope's ranged S3 reader on boto3
  (:meth:`EncryptedS3Client.open_object`: every GET pinned to the ETag, the
  header and data key cached per object version, no s3fs needed);
* ``envelope::file:///path``, ``envelope:///path`` or a bare local path: the
  local random-access reader (:mod:`envelope.reader`);
* any other fsspec filesystem (``envelope::gcs://``, ``envelope::memory://``...):
  its file objects, as the ciphertext source of the same reader.

Options (fsspec's ``storage_options``): ``keys``, key references as a list or
one comma-separated string (polars passes strings only); ``context``, pairs
every file must carry (a dict or ``"k=v,k2=v2"``), checked on every open;
``cache_max_age``, seconds an unwrapped data key is reused for further opens
of the same object version (pyarrow opens a file more than once, each open
would otherwise be a key manager call); ``keystore``; ``chunk_size`` for
files written; the inner filesystem's own options, as fsspec nests them.

Reads have no readahead beyond whole chunks: a read decrypts the chunks it
covers (the reader keeps the last one for the next small read), nothing more.
The final chunk, which proves a file's length (and holds a Parquet footer), is
read on the first open of that ciphertext and kept with the proof for
``cache_max_age``: later opens read only the header.
Sizes (``info``, ``ls``, ``size``) are plaintext sizes, computed from each
file's header and length without any key; the reader proves them on open.
A file that is not an envelope file (an empty ``_SUCCESS`` marker) is listed
as it is, marked ``"envelope": False``; opening it fails.
Writes (``"wb"``) are sequential and appear only when closed cleanly
(:mod:`envelope.writer`).
"""

from __future__ import annotations

import io
import os
import threading
from typing import Any, BinaryIO, Callable, TypeVar, cast

from . import api
from .cache import CacheLimits, DataKeyCache
from .engines import Engine, get_engine
from .exceptions import FormatError, UsageError
from .filesystem_files import CountedReader, InnerDestination, PlaintextFile, ReadStats
from .format import DEFAULT_CHUNK_SIZE, Header, plaintext_size, read_header
from .optional import require
from .reader import DecryptingReader, ProvenEnds
from .s3.header_cache import DEFAULT_MAX_AGE
from .writer import Destination, LocalDestination, buffered

require("fsspec", "fsspec", "the envelope filesystem (envelope::s3://..., envelope::file://...)")

from fsspec import AbstractFileSystem, filesystem  # noqa: E402
from fsspec.implementations.local import LocalFileSystem  # noqa: E402

try:
    from fsspec.implementations.chained import ChainedFileSystem as _Chained
except ImportError:  # fsspec before 2025: chaining works without the marker class
    _Chained = AbstractFileSystem  # type: ignore[misc,assignment]

#: Bytes read to parse a header when sizing a file: most headers fit; longer ones cost one more read.
HEADER_PROBE = 4096
#: Plaintext sizes remembered per filesystem (listing a prefix again costs no header reads).
SIZES_KEPT = 100_000
#: Options fsspec's own base class takes; everything else unknown goes to the inner filesystem.
_FSSPEC_OPTIONS = {"skip_instance_cache", "use_listings_cache", "listings_expiry_time", "max_paths", "asynchronous",
                   "loop"}


_SHARED: dict[tuple[str, float], Any] = {}
_SHARED_LOCK = threading.Lock()
_T = TypeVar("_T")


def _shared(kind: str, max_age: float, make: Callable[[], _T]) -> _T:
    with _SHARED_LOCK:
        if (kind, max_age) not in _SHARED:
            _SHARED[kind, max_age] = make()
        return cast(_T, _SHARED[kind, max_age])


def shared_key_cache(max_age: float) -> DataKeyCache:
    """One cache of unwrapped data keys per age limit, for every filesystem of the process.

    pandas, pyarrow and Dask each build their own filesystem instance from the
    same options, and each may open a file more than once; sharing the cache
    keeps that to one key manager call per object version.  Entries are
    partitioned by keyring and the identity behind it (:mod:`envelope.cache`),
    so one set of keys never receives what another unwrapped.
    """
    return _shared("keys", max_age, lambda: DataKeyCache(CacheLimits(max_age=max_age)))


def shared_proven_ends(max_age: float) -> ProvenEnds:
    """One cache of proven final chunks per age limit, for every local or inner file opened in the process.

    Like the data keys, so that a file opened again (pyarrow opens it twice, a
    query once per column or row group) reads and opens no final chunk.  A hit
    needs the header authenticated under the opener's own keys first
    (:class:`~envelope.reader.ProvenEnds`), so sharing hands no one plaintext
    they could not decrypt.  S3 objects keep theirs with their headers.
    """
    return _shared("ends", max_age, lambda: ProvenEnds(max_age=max_age))


def key_list(keys: Any) -> list[Any] | None:
    """``keys`` as a list: one comma-separated string is split (tools that pass only strings)."""
    if keys is None or keys == "":
        return None
    if isinstance(keys, str):
        return [k.strip() for k in keys.split(",") if k.strip()]
    return list(keys)


def context_dict(context: Any) -> dict[str, str]:
    if not context:
        return {}
    if isinstance(context, str):
        pairs = [p.split("=", 1) for p in context.split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise UsageError(f"context {context!r}: expected k=v pairs separated by commas")
        return {k.strip(): v.strip() for k, v in pairs}
    return dict(context)


class EnvelopeFileSystem(_Chained):
    """fsspec protocol ``envelope``: plaintext views of the envelope files of an inner filesystem."""

    protocol = "envelope"
    root_marker = ""

    def __init__(self, target_protocol: str | None = None, target_options: dict[str, Any] | None = None,
                 fo: str | None = None, *, keys: Any = None, context: Any = None,
                 cache_max_age: float = DEFAULT_MAX_AGE, keystore: str | None = None,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, **kwargs: Any) -> None:
        super().__init__(**{k: v for k, v in kwargs.items() if k in _FSSPEC_OPTIONS})
        options = {**{k: v for k, v in kwargs.items() if k not in _FSSPEC_OPTIONS}, **(target_options or {})}
        self.target_protocol = {"s3a": "s3", "local": "file"}.get(target_protocol or "file", target_protocol or "file")
        self._fo = self._strip_protocol(fo) if fo else ""
        self._keys, self._context = key_list(keys), context_dict(context)
        self._keystore, self.chunk_size = keystore, int(chunk_size)
        self._key_cache = shared_key_cache(float(cache_max_age))
        self._ends = shared_proven_ends(float(cache_max_age))
        self._engine: Engine | None = None  # chosen on the first read (ENVELOPE_ENGINE), then kept
        self._lock = threading.Lock()
        self._keyrings: dict[str, Any] = {}
        self._sizes: dict[tuple[str, Any, int], int] = {}  # (path, version, stored size) -> plaintext size
        self.stats = ReadStats()
        self._max_age = float(cache_max_age)
        self._client: Any = None  # boto3's, for envelope::s3
        self._s3_client: Any = None  # its EncryptedS3Client, made when a key is first needed
        if self.target_protocol == "s3":
            from .s3.fsspec_s3 import BotoS3FileSystem, boto_client

            self._client = boto_client(options)
            self.fs: AbstractFileSystem = BotoS3FileSystem(client=self._client, skip_instance_cache=True)
        else:
            self.fs = filesystem(self.target_protocol, **options)
        self._local = isinstance(self.fs, LocalFileSystem)

    # -- paths -----------------------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
        text = text.rsplit("::", 1)[-1]
        if text.startswith("envelope://"):
            text = text[len("envelope://"):]
        if "://" in text:  # the inner filesystem's protocol: its paths are what this one takes
            text = text.split("://", 1)[1]
        return text.rstrip("/") if len(text) > 1 else text

    def _inner(self, path: Any) -> str:
        stripped = self._strip_protocol(path) or self._fo
        return str(self.fs._strip_protocol(stripped))

    # -- keys ------------------------------------------------------------------------------------------

    @property
    def _s3(self) -> Any:
        """The encrypting S3 client (its header cache, its keyrings), resolved on first use: listing needs no key."""
        with self._lock:
            if self._s3_client is None:
                from .s3.client import EncryptedS3Client

                self._s3_client = EncryptedS3Client(self._client, self._keys, context=self._context,
                                                    keystore=self._keystore, chunk_size=self.chunk_size,
                                                    header_max_age=self._max_age, cache=self._key_cache)
            return self._s3_client

    def _keyring(self, purpose: str) -> Any:
        if self._client is not None:
            s3 = self._s3
            return s3.encryption_keyring if purpose == "encrypt" else s3.decryption_keyring
        with self._lock:
            if purpose not in self._keyrings:
                if purpose == "encrypt":  # a fresh data key for every file written
                    self._keyrings[purpose] = api.encryption_keyring(self._keys, keystore=self._keystore)
                else:
                    self._keyrings[purpose] = api.decryption_keyring(self._keys, keystore=self._keystore,
                                                                     cache=self._key_cache)
            return self._keyrings[purpose]

    # -- listing: plaintext sizes ----------------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        entries = self.fs.ls(self._inner(path), detail=True, **kwargs)
        if not detail:
            return [e["name"] for e in entries]
        return [self._plain_entry(e) for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._plain_entry(self.fs.info(self._inner(path), **kwargs))

    def exists(self, path: str, **kwargs: Any) -> bool:
        return bool(self.fs.exists(self._inner(path), **kwargs))

    def isdir(self, path: str) -> bool:
        return bool(self.fs.isdir(self._inner(path)))

    def isfile(self, path: str) -> bool:
        return bool(self.fs.isfile(self._inner(path)))

    def modified(self, path: str) -> Any:
        return self.fs.modified(self._inner(path))

    def _plain_entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        if entry.get("type") != "file":
            return entry
        stored = int(entry["size"])
        version = entry.get("ETag") or entry.get("mtime") or entry.get("LastModified") or entry.get("created")
        ident = (entry["name"], version, stored)
        size = self._sizes.get(ident)
        if size is None:
            try:
                header = self._header(entry["name"]) if stored else None
            except FormatError:
                header = None
            if header is None:  # a marker (_SUCCESS) or a stray file: listed as it is; opening it fails
                return {**entry, "envelope": False}
            size = plaintext_size(header.size, stored, header.chunk_size)
            if len(self._sizes) >= SIZES_KEPT:
                self._sizes.clear()
            self._sizes[ident] = size
        return {**entry, "size": size, "encrypted_size": stored}

    def _header(self, name: str) -> Header:
        """The header as the file says it, without any key: for its length and chunk size only."""
        if self._client is not None:
            from .s3.fsspec_s3 import split_path
            from .s3.ranged import RangedObject

            bucket, key = split_path(name)
            probe = RangedObject.first(self._client, bucket, key, window=HEADER_PROBE)
            return read_header(cast(BinaryIO, probe))[0]
        with self._source(name, block_size=HEADER_PROBE) as src:
            return read_header(src)[0]

    # -- changes, passed to the inner filesystem --------------------------------------------------------

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self.fs.mkdir(self._inner(path), create_parents=create_parents, **kwargs)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.fs.makedirs(self._inner(path), exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        self.fs.rmdir(self._inner(path))

    def rm_file(self, path: str) -> None:
        self.fs.rm_file(self._inner(path))

    def _rm(self, path: str) -> None:
        self.fs.rm_file(self._inner(path))

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        paths = [self._inner(p) for p in (path if isinstance(path, list) else [path])]
        self.fs.rm(paths, recursive=recursive, maxdepth=maxdepth)

    # -- files -----------------------------------------------------------------------------------------

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True,
              cache_options: Any = None, **kwargs: Any) -> Any:
        name = self._inner(path)
        if mode in ("wb", "xb"):
            return buffered(self._destination(name, mode), self._keyring("encrypt"), context=self._context,
                            chunk_size=self.chunk_size)
        if mode != "rb":
            raise UsageError(f"envelope files open for reading ('rb') or writing in order ('wb'); {mode!r} "
                             "(appending, updating in place) would need the chunks after the change re-sealed")
        if self._client is not None:
            from .s3.fsspec_s3 import split_path

            raw = self._s3.open_object(*split_path(name))
        else:
            src = self._source(name)
            try:
                raw = DecryptingReader(src, self._keyring("decrypt"), required_context=self._context,
                                       close_source=True, ends=self._ends, engine=self._read_engine())
            except BaseException:
                src.close()
                raise
        self.stats.opened()
        return PlaintextFile(raw, self.stats)

    def _read_engine(self) -> Engine:
        if self._engine is None:
            self._engine = get_engine()
        return self._engine

    def _source(self, name: str, block_size: int | None = None) -> BinaryIO:
        """The ciphertext of a local or inner file, seekable, with its bytes read counted."""
        if self._local:
            return cast(BinaryIO, CountedReader(io.open(name, "rb", buffering=0)))
        inner = self.fs.open(name, "rb", block_size=block_size, cache_type="none" if block_size is None else "readahead")
        return cast(BinaryIO, CountedReader(inner))

    def _destination(self, name: str, mode: str) -> Destination:
        if self._client is not None:
            from .s3.fsspec_s3 import split_path
            from .s3.writer import S3Destination

            if mode == "xb" and self.fs.exists(name):
                raise FileExistsError(name)
            return S3Destination(self._s3, *split_path(name))
        if self._local:  # as in S3, where a prefix needs no creating, the directory is made
            self.fs.makedirs(self.fs._parent(name), exist_ok=True)
            return LocalDestination(name, force=mode == "wb")
        return InnerDestination(self.fs, name, mode)
