"""``s3://`` for fsspec on boto3: listing, sizes and plain ranged reads, what the ``envelope`` filesystem needs.

fsspec resolves every link of a chained URL by protocol before it builds the
filesystem, so ``envelope::s3://bucket/key`` needs *some* class for ``s3``.
s3fs is the usual one, but it pins an older botocore (through aiobotocore)
than envelope's boto3 needs.  So envelope registers ``s3`` itself
(pyproject's ``fsspec.specs``), as :data:`S3FileSystem`: s3fs's own class when
s3fs is installed, so ``s3://`` means what it always meant; without s3fs, a
class that parses ``s3://`` URLs for the chain but, used on its own, still
says to install s3fs.  Envelope's filesystem lists and reads through
:class:`BotoS3FileSystem` on its own boto3 client, whichever is installed.
"""

from __future__ import annotations

from typing import Any

from fsspec import AbstractFileSystem
from fsspec.spec import AbstractBufferedFile

# Options an s3fs user passes, as boto3 names them.
_CREDENTIALS = {"key": "aws_access_key_id", "secret": "aws_secret_access_key", "token": "aws_session_token"}


def boto_client(options: dict[str, Any]) -> Any:
    """A boto3 S3 client from s3fs-style options: endpoint_url, key, secret, token, region_name, client_kwargs."""
    import boto3

    kwargs = dict(options.get("client_kwargs") or {})
    for name in ("endpoint_url", "region_name"):
        if options.get(name):
            kwargs[name] = options[name]
    for ours, theirs in _CREDENTIALS.items():
        if options.get(ours):
            kwargs[theirs] = options[ours]
    return boto3.client("s3", **kwargs)


def split_path(path: str) -> tuple[str, str]:
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


def _missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code"))
    return code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket")


class BotoS3FileSystem(AbstractFileSystem):
    """A small S3 filesystem on one boto3 client: buckets and prefixes as directories, objects as files."""

    protocol = ("s3", "s3a")
    root_marker = ""

    def __init__(self, client: Any = None, **options: Any) -> None:
        super().__init__()
        self.client = client if client is not None else boto_client(options)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        bucket, key = split_path(self._strip_protocol(path).rstrip("/"))
        if not bucket:
            names = [b["Name"] for b in self.client.list_buckets().get("Buckets", [])]
            entries = [{"name": n, "size": 0, "type": "directory"} for n in names]
        else:
            prefix = f"{key}/" if key else ""
            entries = []
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix,
                                                                              Delimiter="/"):
                entries += [{"name": f"{bucket}/{p['Prefix'].rstrip('/')}", "size": 0, "type": "directory"}
                            for p in page.get("CommonPrefixes", [])]
                entries += [self._file(bucket, o["Key"], o) for o in page.get("Contents", []) if o["Key"] != prefix]
            if not entries and key:
                entries = [self.info(path)]  # an object, listed as itself (or FileNotFoundError)
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        bucket, key = split_path(self._strip_protocol(path).rstrip("/"))
        if not key:
            return {"name": bucket, "size": 0, "type": "directory"}
        try:
            return self._file(bucket, key, self.client.head_object(Bucket=bucket, Key=key))
        except ClientError as exc:
            if not _missing(exc):
                raise
        listed = self.client.list_objects_v2(Bucket=bucket, Prefix=f"{key}/", MaxKeys=1)
        if listed.get("KeyCount", 0):
            return {"name": f"{bucket}/{key}", "size": 0, "type": "directory"}
        raise FileNotFoundError(f"s3://{bucket}/{key}")

    def modified(self, path: str) -> Any:
        return self.info(path).get("LastModified")

    def _file(self, bucket: str, key: str, listed: dict[str, Any]) -> dict[str, Any]:
        size = listed["Size"] if "Size" in listed else listed["ContentLength"]
        return {"name": f"{bucket}/{key}", "size": int(size), "type": "file", "ETag": listed.get("ETag"),
                "LastModified": listed.get("LastModified")}

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        pass  # S3 has no directories: a prefix exists once an object is under it

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        pass

    def rmdir(self, path: str) -> None:
        pass

    def rm_file(self, path: str) -> None:
        bucket, key = split_path(self._strip_protocol(path))
        self.client.delete_object(Bucket=bucket, Key=key)

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True,
              cache_options: Any = None, **kwargs: Any) -> Any:
        if mode != "rb":
            raise ValueError(f"this S3 filesystem reads only (mode 'rb'), got {mode!r}")
        return _S3File(self, path, mode, block_size=block_size or "default", autocommit=autocommit,
                       cache_options=cache_options, **kwargs)


class _S3File(AbstractBufferedFile):
    """An object read by ranged GETs pinned to the ETag its listing gave."""

    def _fetch_range(self, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        bucket, key = split_path(self.path)
        extra = {"IfMatch": self.details["ETag"]} if self.details.get("ETag") else {}
        body = self.fs.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}", **extra)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()


try:
    from s3fs import S3FileSystem  # noqa: F401 - installed: s3:// stays s3fs's
except ImportError:
    class S3FileSystem(BotoS3FileSystem):  # type: ignore[no-redef]
        """What ``s3`` resolves to without s3fs: its URLs parse, for ``envelope::s3://`` chains."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError("Install s3fs to access S3 (envelope::s3:// URLs need only boto3)")


__all__ = ["BotoS3FileSystem", "S3FileSystem", "boto_client", "split_path"]
