"""The task a worker runs for one object or file: it reads the source and writes the destination itself.

Every task is safe to run twice (a worker killed mid-task has its tasks run
again elsewhere, and ``--resume`` runs again what was not recorded done):

* a destination records what it was made from (:attr:`~envelope.bulk.plan.Item.mark`,
  in S3 metadata or a local extended attribute); a task whose destination
  already records its source is skipped after one HEAD (or stat), with no
  key manager call (the HEAD only for objects the destination's listing
  showed when the job was planned: a fresh prefix costs none);
* a destination appears whole or not at all: one PUT, a multipart upload
  completed only at the end (and aborted on failure), or a local file renamed
  into place once every chunk verified (:mod:`envelope.atomic`);
* a multipart upload a job may start (encrypt into S3, rewrap in place) is in
  the manifest before the job runs (its item, with ``multipart``); a task
  about to upload first aborts any upload to its key left by an earlier,
  killed attempt;
* rewrap reads the header first (one ranged GET) and skips an object already
  wrapped under exactly the new keys.

Failures are returned, not raised: one object's failure is a row of the
manifest, never the end of the job, unless no object can succeed (the keys
cannot be opened in this worker, or the key manager refuses the job's key):
then the result says so (``setup``, the error's class) and the driver stops
the job.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from typing import Any, BinaryIO, cast

from ..atomic import atomic_output, open_input
from ..exceptions import EnvelopeError
from ..format import Header, read_header
from ..keyrings.base import MultiKeyring
from ..s3.names import S3_SCHEME, split_url
from ..stream import decrypt_stream, encrypt_stream, open_header
from .plan import MARK_METADATA, MARK_XATTR, MULTIPART_THRESHOLD, Item
from .workerstate import JobConfig, MeteredKeyring, WorkerState, state_for

DONE, SKIPPED, FAILED = "done", "skipped", "failed"


def run_item(config: JobConfig, item: Item) -> dict[str, Any]:
    """Do one item; the result is a small dict for the manifest (never plaintext, never a key)."""
    started, calls = time.monotonic(), MeteredKeyring.calls()
    result: dict[str, Any] = {"src": item.src, "dst": item.dst, "size": item.size, "bytes": 0, "error": None,
                              "key_ids": None, "setup": None}
    MeteredKeyring.forget_refusal()
    try:
        state = state_for(config)
    except Exception as exc:  # the job's keys cannot be opened here: no object can succeed
        state, result["error"], result["setup"] = None, _describe(exc), type(exc).__name__
    outcome = FAILED
    if state is not None:
        try:
            outcome = _OPERATIONS[config.operation](state, item, result)
        except Exception as exc:  # anything one object can raise is that object's failure
            result["error"] = _describe(exc)
            if MeteredKeyring.refused():  # ... unless the key manager refused the job's own key
                result["setup"] = type(exc).__name__
    result.update(outcome=outcome, kms_calls=MeteredKeyring.calls() - calls,
                  seconds=round(time.monotonic() - started, 4))
    return result


def _describe(exc: BaseException) -> str:
    """One line: S3's code and message for a botocore error, the message for the rest (never a key)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response["Error"]
        return f"S3 {getattr(exc, 'operation_name', '')}: {error.get('Code', '')} {error.get('Message', '')}".strip()
    text = " ".join(str(exc).split())
    return text if isinstance(exc, (EnvelopeError, OSError)) and text else f"{type(exc).__name__}: {text}"


# -- marks: what a destination was made from ----------------------------------------------------------------


def _s3_marked(state: WorkerState, url: str, mark: str) -> bool:
    from botocore.exceptions import ClientError

    bucket, key = split_url(url)
    try:
        head = state.s3().head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return bool((head.get("Metadata") or {}).get(MARK_METADATA) == mark)


def _local_marked(path: str, mark: str) -> bool:
    try:
        return os.getxattr(path, MARK_XATTR, follow_symlinks=False) == mark.encode()
    except OSError:  # absent, or a file system without user attributes: do the work
        return False


def _mark_local(out: BinaryIO, mark: str) -> None:
    with contextlib.suppress(OSError):  # no user attributes here: the manifest alone records it
        os.setxattr(out.fileno(), MARK_XATTR, mark.encode())


@contextlib.contextmanager
def _local_output(config: JobConfig, path: str, mark: str) -> Any:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_output(path, force=config.force) as out:
        yield out
        _mark_local(out, mark)


def _abort_stale_uploads(s3: Any, bucket: str, key: str) -> None:
    """Abort multipart uploads to *key* left by an earlier attempt (killed before it could abort them)."""
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key):
        for upload in page.get("Uploads", []):
            if upload["Key"] == key:
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])


@contextlib.contextmanager
def _source(state: WorkerState, item: Item) -> Any:
    """The source's bytes: a local file, or the object as listed (IfMatch: changed since is an error)."""
    if not item.src.startswith(S3_SCHEME):
        with open_input(item.src) as f:
            yield f
        return
    from ..s3.whole_object import RawStreamingBody

    bucket, key = split_url(item.src)
    body = state.s3().get_object(Bucket=bucket, Key=key, IfMatch=item.stamp)["Body"]
    try:
        if item.size < MULTIPART_THRESHOLD:  # read whole: a seekable body goes up in one PUT
            yield io.BytesIO(body.read())
        else:
            yield RawStreamingBody(body)
    finally:
        body.close()


# -- the operations -------------------------------------------------------------------------------------


def _encrypt(state: WorkerState, item: Item, result: dict[str, Any]) -> str:
    assert item.dst is not None and state.encrypting is not None
    config = state.config
    if item.dst.startswith(S3_SCHEME):
        if item.check and _s3_marked(state, item.dst, item.mark):
            return SKIPPED
        bucket, key = split_url(item.dst)
        if item.multipart:
            _abort_stale_uploads(state.s3(), bucket, key)
        from boto3.s3.transfer import TransferConfig

        with _source(state, item) as src:
            state.encrypted(state.encrypting).upload_fileobj(
                src, bucket, key, ExtraArgs={"Metadata": {MARK_METADATA: item.mark}},
                Config=TransferConfig(multipart_threshold=MULTIPART_THRESHOLD))
    else:
        if _local_marked(item.dst, item.mark):
            return SKIPPED
        with _source(state, item) as src, _local_output(config, item.dst, item.mark) as out:
            encrypt_stream(src, out, state.encrypting, context=config.context_dict, plaintext_size=item.size)
    result["bytes"] = item.size
    return DONE


def _decrypt(state: WorkerState, item: Item, result: dict[str, Any]) -> str:
    assert item.dst is not None
    if _local_marked(item.dst, item.mark):
        return SKIPPED
    config = state.config
    with _local_output(config, item.dst, item.mark) as out:
        if item.src.startswith(S3_SCHEME):
            bucket, key = split_url(item.src)
            state.encrypted(state.decrypting).download_stream(bucket, key, out, ExtraArgs={"IfMatch": item.stamp})
        else:
            with open_input(item.src) as src:
                decrypt_stream(src, out, state.decrypting, required_context=config.context_dict)
        result["bytes"] = out.tell()
    return DONE


class _Discard(io.RawIOBase):
    """Where verified plaintext goes when only its authenticity is wanted."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(memoryview(data).cast("B"))


def _key_ids(header: Header) -> list[str]:
    return [f"{w.provider}:{w.key_id}" for w in header.wrapped_keys]


def _verify(state: WorkerState, item: Item, result: dict[str, Any]) -> str:
    config = state.config
    with _sealed(state, item, whole=not config.headers_only) as src:
        if config.headers_only:  # the header's MAC and the key commitment: the data key is the one written
            header, _ = open_header(src, state.decrypting, required_context=config.context_dict)
        else:
            sink = _Discard()
            header = decrypt_stream(src, cast(BinaryIO, sink), state.decrypting, required_context=config.context_dict)
    result["key_ids"] = _key_ids(header)
    result["bytes"] = item.size
    return DONE


@contextlib.contextmanager
def _sealed(state: WorkerState, item: Item, *, whole: bool) -> Any:
    """An envelope object or file to read: whole (one streaming GET) or from its header on (ranged GETs)."""
    if not item.src.startswith(S3_SCHEME):
        with open_input(item.src) as f:
            yield f
        return
    from ..s3.whole_object import RawStreamingBody
    from ..s3.ranged import RangedObject

    bucket, key = split_url(item.src)
    if not whole:
        yield RangedObject(state.s3(), bucket, key, item.size, item.stamp, window=64 << 10)
        return
    body = state.s3().get_object(Bucket=bucket, Key=key, IfMatch=item.stamp)["Body"]
    try:
        yield io.BufferedReader(RawStreamingBody(body), 1 << 20)
    finally:
        body.close()


def _already_under(header: Header, wrap: MultiKeyring) -> bool:
    """Whether the header's wrapped keys are exactly one per new key (decided without a key manager call)."""
    wrapped = header.wrapped_keys
    return len(wrapped) == len(wrap.keyrings) and all(
        any(k.matches(w) for w in wrapped) for k in wrap.keyrings) and all(
        any(k.matches(w) for k in wrap.keyrings) for w in wrapped)


def _rewrap(state: WorkerState, item: Item, result: dict[str, Any]) -> str:
    assert state.encrypting is not None
    config = state.config
    with _sealed(state, item, whole=False) as src:
        header, _ = read_header(src)
    if _local_marked(item.dst, item.mark) if item.dst is not None else _already_under(header, state.encrypting):
        result["key_ids"] = None if item.dst is not None else _key_ids(header)
        return SKIPPED
    if item.src.startswith(S3_SCHEME):
        from ..s3.rewrap import rewrap_object

        bucket, key = split_url(item.src)
        if item.multipart:
            _abort_stale_uploads(state.s3(), bucket, key)
        done = rewrap_object(state.s3(), bucket, key, state.decrypting, state.encrypting,
                             context=config.context_dict)
        result["key_ids"] = [f"{w.provider}:{w.key_id}" for w in done["WrappedKeys"]]
    else:
        from ..rewrap import rewrap_file

        new = rewrap_file(item.src, list(state.encrypting.keyrings), output=item.dst,
                          unwrap_keys=list(state.decrypting.keyrings), context=config.context_dict,
                          force=config.force)
        if item.dst is not None:
            with contextlib.suppress(OSError):
                os.setxattr(item.dst, MARK_XATTR, item.mark.encode(), follow_symlinks=False)
        result["key_ids"] = _key_ids(new)
    result["bytes"] = item.size
    return DONE


_OPERATIONS = {"encrypt": _encrypt, "decrypt": _decrypt, "verify": _verify, "rewrap": _rewrap}
