"""Bulk jobs on Dask: encrypt, decrypt, rewrap or verify a whole S3 prefix or directory tree.

``pip install 'envelope[bulk]'``.  The same job runs on a laptop (a
``LocalCluster`` of worker processes, the default) and on a cluster (pass
``client=`` a ``distributed.Client``, or ``scheduler="tcp://…"``)::

    import envelope.bulk
    result = envelope.bulk.encrypt("data/", "s3://bucket/sealed/", keys=["aws-kms:arn:…"], cache_max_age=300)
    assert result.ok, result.failures

Keys are *references*: each worker process resolves them itself, so workers
need what a program using those keys needs (the key file, the keystore, AWS
credentials); no keyring, client or key is ever pickled into a task, and
keyrings refuse to be.  Every destination records what it was made from, so
rerunning a job, or ``resume=JOB``, skips what is done.  See
:mod:`envelope.bulk.tasks` for what makes each task safe to repeat and
:mod:`envelope.bulk.manifest` for the record kept.  Importing this module
does not import Dask; running a job does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..context import EncryptionContext
from .driver import BulkResult, Options, run

__all__ = ["BulkResult", "Options", "decrypt", "encrypt", "rewrap", "run", "verify"]


def _job(operation: str, src: str | None, dst: str | None, *, keys: Sequence[str] | None,
         from_keys: Sequence[str] | None = None, context: EncryptionContext | None, include: Sequence[str],
         exclude: Sequence[str], cache_max_age: float | None, max_kms_rps: float | None, endpoint_url: str | None,
         region: str | None, keystore: str | None, headers_only: bool = False, force: bool = False,
         **running: Any) -> BulkResult:
    options = Options(keys=list(keys or ()), from_keys=list(from_keys or ()), context=dict(context or {}),
                      include=list(include), exclude=list(exclude), cache_max_age=cache_max_age,
                      max_kms_rps=max_kms_rps, endpoint_url=endpoint_url, region=region, keystore=keystore,
                      headers_only=headers_only, force=force)
    return run(operation, src, dst, options=options, **running)


def encrypt(src: str | None, dst: str | None, *, keys: Sequence[str] | None = None,
            context: EncryptionContext | None = None, include: Sequence[str] = (), exclude: Sequence[str] = (),
            client: Any = None, scheduler: str | None = None, workers: int | None = None, threads: int | None = None,
            manifest: str | None = None, resume: str | None = None, dry_run: bool = False,
            cache_max_age: float | None = None, max_kms_rps: float | None = None, endpoint_url: str | None = None,
            region: str | None = None, keystore: str | None = None, force: bool = False) -> BulkResult:
    """Encrypt every file under a directory, or object under a prefix, into *dst* (a directory or prefix)."""
    return _job("encrypt", src, dst, keys=keys, context=context, include=include, exclude=exclude,
                cache_max_age=cache_max_age, max_kms_rps=max_kms_rps, endpoint_url=endpoint_url, region=region,
                keystore=keystore, force=force, client=client, scheduler=scheduler, workers=workers,
                threads=threads, manifest=manifest, resume=resume, dry_run=dry_run)


def decrypt(src: str | None, dst: str | None, *, keys: Sequence[str] | None = None,
            context: EncryptionContext | None = None, include: Sequence[str] = (), exclude: Sequence[str] = (),
            client: Any = None, scheduler: str | None = None, workers: int | None = None, threads: int | None = None,
            manifest: str | None = None, resume: str | None = None, dry_run: bool = False,
            cache_max_age: float | None = None, max_kms_rps: float | None = None, endpoint_url: str | None = None,
            region: str | None = None, keystore: str | None = None, force: bool = False) -> BulkResult:
    """Decrypt every envelope object under a prefix (or ``*.envelope`` file under a directory) into a directory."""
    return _job("decrypt", src, dst, keys=keys, context=context, include=include, exclude=exclude,
                cache_max_age=cache_max_age, max_kms_rps=max_kms_rps, endpoint_url=endpoint_url, region=region,
                keystore=keystore, force=force, client=client, scheduler=scheduler, workers=workers,
                threads=threads, manifest=manifest, resume=resume, dry_run=dry_run)


def rewrap(src: str | None, dst: str | None = None, *, keys: Sequence[str] | None = None,
           from_keys: Sequence[str] | None = None, context: EncryptionContext | None = None,
           include: Sequence[str] = (), exclude: Sequence[str] = (), client: Any = None,
           scheduler: str | None = None, workers: int | None = None, threads: int | None = None,
           manifest: str | None = None, resume: str | None = None, dry_run: bool = False,
           cache_max_age: float | None = None, max_kms_rps: float | None = None, endpoint_url: str | None = None,
           region: str | None = None, keystore: str | None = None, force: bool = False) -> BulkResult:
    """New wrapped data keys under *keys* for every object (in place; bodies copied inside S3) or file."""
    if not keys and resume is None:
        from ..exceptions import UsageError

        raise UsageError("rewrap needs at least one key to wrap the data keys under")
    return _job("rewrap", src, dst, keys=keys, from_keys=from_keys, context=context, include=include,
                exclude=exclude, cache_max_age=cache_max_age, max_kms_rps=max_kms_rps, endpoint_url=endpoint_url,
                region=region, keystore=keystore, force=force, client=client, scheduler=scheduler,
                workers=workers, threads=threads, manifest=manifest, resume=resume, dry_run=dry_run)


def verify(src: str | None, *, keys: Sequence[str] | None = None, context: EncryptionContext | None = None,
           include: Sequence[str] = (), exclude: Sequence[str] = (), headers_only: bool = False,
           client: Any = None, scheduler: str | None = None, workers: int | None = None, threads: int | None = None,
           manifest: str | None = None, resume: str | None = None, dry_run: bool = False,
           cache_max_age: float | None = None, max_kms_rps: float | None = None, endpoint_url: str | None = None,
           region: str | None = None, keystore: str | None = None) -> BulkResult:
    """Open every object's header and every chunk (*headers_only*: header and key commitment); the result's
    ``key_ids`` counts the objects under each key id."""
    return _job("verify", src, None, keys=keys, context=context, include=include, exclude=exclude,
                cache_max_age=cache_max_age, max_kms_rps=max_kms_rps, endpoint_url=endpoint_url, region=region,
                keystore=keystore, headers_only=headers_only, client=client, scheduler=scheduler,
                workers=workers, threads=threads, manifest=manifest, resume=resume, dry_run=dry_run)
