"""Where the fsspec tests keep envelope files: a local directory or a bucket of the moto server, one URL scheme each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import fsspec


@dataclass
class World:
    """A place for encrypted files: ``url(name)`` for the dataframe libraries, ``fs`` and ``path(name)`` for pyarrow."""

    kind: str
    root: str  # local directory, or bucket
    options: dict[str, Any]  # storage_options
    raw: Any = None  # the boto3 client of the bucket (S3 only)

    def url(self, name: str) -> str:
        if self.kind == "local":
            return f"envelope::file://{self.root}/{name}"
        return f"envelope::s3://{self.root}/{name}"

    @property
    def fs(self) -> Any:
        return fsspec.core.url_to_fs(self.url("x"), **self.options)[0]

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def stored(self, name: str) -> bytes:
        if self.kind == "local":
            with open(self.path(name), "rb") as f:
                return f.read()
        return bytes(self.raw.get_object(Bucket=self.root, Key=name)["Body"].read())

    def store_new(self, name: str, data: bytes) -> None:
        """Put a file that is not an envelope file."""
        if self.kind == "local":
            with open(self.path(name), "wb") as f:
                f.write(data)
        else:
            self.raw.put_object(Bucket=self.root, Key=name, Body=data)

    def store(self, name: str, data: bytes) -> None:
        """Replace a file's stored bytes as they are (to tamper with them)."""
        if self.kind == "local":
            with open(self.path(name), "wb") as f:
                f.write(data)
        else:
            head = self.raw.head_object(Bucket=self.root, Key=name)
            self.raw.put_object(Bucket=self.root, Key=name, Body=data, Metadata=head["Metadata"])


def make_world(kind: str, tmp_path: Any, keys: str, request: Any) -> World:
    if kind == "local":
        return World("local", str(tmp_path), {"keys": keys})
    s3 = request.getfixturevalue("s3")
    endpoint = request.getfixturevalue("s3_endpoint")
    return World("s3", s3.bucket, {"keys": keys, "s3": {"endpoint_url": endpoint, "region_name": "us-east-1"}}, s3)
