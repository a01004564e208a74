"""boto3 KMS clients for the aws-kms keyrings: made once per region, called with bounds.

boto3 is imported on first use and configured the way boto3 always is: the
usual credentials chain, ``AWS_PROFILE``, the region (``AWS_REGION`` first, as
the AWS CLI v2 reads it, then ``AWS_DEFAULT_REGION`` and the profile's), and
``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_KMS`` for another endpoint.  Retries
use botocore's ``standard`` mode (exponential backoff with jitter) unless
``AWS_RETRY_MODE`` asks for ``adaptive``, which also rate-limits on the client
side; ``AWS_MAX_ATTEMPTS`` overrides the number of attempts.  A KMS endpoint that
hangs costs at most :data:`CONNECT_TIMEOUT` / :data:`READ_TIMEOUT` seconds per
attempt (``ENVELOPE_KMS_TIMEOUT`` sets both), not botocore's minute.  KMS quotas are per account and region, so every call in the process goes
through one semaphore: a program that opens many files at once from many
threads makes at most :data:`MAX_CONCURRENT_CALLS` KMS requests at a time.

Every client, KMS or S3, comes from one boto3 Session per process (per
profile, ``AWS_REGION`` and the rest of the AWS environment): a Session loads
botocore's data, tens of milliseconds and megabytes each, so a command that
opens an S3 client and KMS clients, or threads that each make one, pay it
once.  A Session is not thread-safe (its clients are): it is made, and clients
and credentials are taken from it, only under one lock.  A forked child
forgets its parent's Sessions and makes its own; none is ever pickled.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from typing import Any

from ..exceptions import AccessDeniedError, KeyNotFoundError, KeyringError, KeyStateError, UsageError
from ..optional import require

#: botocore retry attempts (first try included) before throttling becomes an error.
MAX_ATTEMPTS = 8
#: KMS requests in flight at once, across the process (also the HTTP pool size).
MAX_CONCURRENT_CALLS = 10
#: Seconds to connect to KMS and to wait for an answer, per attempt; KMS answers in milliseconds.
CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 30.0
TIMEOUT_ENV = "ENVELOPE_KMS_TIMEOUT"
_RETRY_MODES = ("standard", "adaptive")

_slots = threading.BoundedSemaphore(MAX_CONCURRENT_CALLS)
_METHODS = {"GenerateDataKey": "generate_data_key", "Encrypt": "encrypt", "Decrypt": "decrypt",
            "DescribeKey": "describe_key"}


def set_max_concurrent_calls(limit: int) -> None:
    """Change the process-wide bound on KMS requests in flight (before making any)."""
    global _slots, MAX_CONCURRENT_CALLS
    if limit < 1:
        raise UsageError("the number of concurrent KMS calls must be at least 1")
    MAX_CONCURRENT_CALLS = limit
    _slots = threading.BoundedSemaphore(limit)


def _import_boto3() -> Any:
    """boto3, or one line naming the extra that installs it (before any botocore import can fail)."""
    return require("boto3", "aws", "aws-kms keys")


def env_region() -> str | None:
    """``AWS_REGION``: read first by the AWS CLI v2 and the other SDKs, but not by botocore.

    Given to boto3 as the session's region, it comes before what botocore
    reads itself (``AWS_DEFAULT_REGION``, then the profile's ``region``); an
    explicit region (``--region``, ``region=``, a key ARN's) still comes first.
    """
    return os.environ.get("AWS_REGION") or None


def default_region(profile: str | None) -> str | None:
    """The region a KMS call goes to when none is given: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's."""
    session = make_session(profile)
    with session_lock():
        return session.region_name  # type: ignore[no-any-return]


#: Sessions kept for later clients: the environment rarely changes, and one that did leaves the old ones stale.
SESSIONS_KEPT = 4
# The process's boto3 Sessions by what configures them, most recent last; every use of one is under the lock.
_SESSIONS: OrderedDict[tuple[str | None, bytes], Any] = OrderedDict()
_SESSIONS_LOCK = threading.Lock()
_FINGERPRINT_KEY = os.urandom(16)
# Besides AWS_*, what boto3 reads when it finds its files and credentials.
_MORE_ENVIRONMENT = ("HOME",)


def _forget_sessions() -> None:
    """In a forked child: the parent's Sessions (and a lock another thread may have held) are not its own."""
    global _SESSIONS, _SESSIONS_LOCK
    _SESSIONS, _SESSIONS_LOCK = OrderedDict(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_sessions)


def _environment() -> bytes:
    """What boto3 reads from the environment (credentials too) and the state of its two files, as a keyed
    digest: a change (credentials rotated in the file, too) means another Session, as a new one would have
    seen it, and no second copy of a secret is kept."""
    seen: list[object] = [*sorted((k, v) for k, v in os.environ.items()
                                  if k.startswith("AWS_") or k in _MORE_ENVIRONMENT)]
    for variable, default in (("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
                              ("AWS_CONFIG_FILE", "~/.aws/config")):
        try:
            st = os.stat(os.path.expanduser(os.environ.get(variable) or default))
            seen.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            seen.append(None)
    return hashlib.blake2b(repr(seen).encode(), key=_FINGERPRINT_KEY, digest_size=16).digest()


def shared_session(profile: str | None) -> Any:
    """This process's boto3 Session of *profile* (default: boto3's own choice) in :func:`env_region` if set.

    Made once per profile and AWS environment; botocore's errors (an unknown
    profile) are raised as they are.  Use it only under :func:`session_lock`;
    boto3 must be importable (callers check with :func:`envelope.optional.require`).
    """
    import boto3

    key = (profile, _environment())
    with session_lock():
        session = _SESSIONS.get(key)
        if session is None:
            session = _SESSIONS[key] = boto3.session.Session(profile_name=profile, region_name=env_region())
            while len(_SESSIONS) > SESSIONS_KEPT:  # clients made from one keep it alive while they are used
                _SESSIONS.popitem(last=False)
        _SESSIONS.move_to_end(key)
        return session


def session_lock() -> threading.Lock:
    """Held while a Session makes a client or resolves credentials: a Session is not thread-safe."""
    return _SESSIONS_LOCK


def service_client(service: str, profile: str | None = None, **kwargs: Any) -> Any:
    """A boto3 client of *service* from the process's Session (botocore's errors as they are)."""
    session = shared_session(profile)
    with session_lock():
        return session.client(service, **kwargs)


def make_session(profile: str | None) -> Any:
    """The process's boto3 session of *profile* (:func:`shared_session`), failures as a :class:`KeyringError`."""
    _import_boto3()
    from botocore.exceptions import BotoCoreError

    try:
        return shared_session(profile)
    except BotoCoreError as exc:
        raise KeyringError(f"cannot set up AWS KMS: {' '.join(str(exc).split())}") from None


def make_client(region: str | None, profile: str | None, session: Any = None) -> Any:
    """A KMS client from boto3's usual configuration (of *session*, if given), with bounded, jittered retries."""
    session = session if session is not None else make_session(profile)
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    connect, read = timeouts()
    config = Config(retries={"mode": retry_mode(), "total_max_attempts": max_attempts()},  # the first try included
                    max_pool_connections=MAX_CONCURRENT_CALLS, connect_timeout=connect, read_timeout=read)
    try:
        with session_lock():
            return session.client("kms", region_name=region, config=config)
    except BotoCoreError as exc:
        raise KeyringError(f"cannot set up AWS KMS: {' '.join(str(exc).split())}") from None


def retry_mode() -> str:
    """``AWS_RETRY_MODE`` if it is ``standard`` or ``adaptive``, else ``standard``: never botocore's ``legacy``,
    the default of older botocore, whose defaults differ from one version to the next."""
    mode = os.environ.get("AWS_RETRY_MODE", "standard")
    return mode if mode in _RETRY_MODES else "standard"


def max_attempts() -> int:
    """``AWS_MAX_ATTEMPTS`` as botocore reads it, else :data:`MAX_ATTEMPTS`.

    An explicit retry config would otherwise hide the variable from botocore.
    """
    text = os.environ.get("AWS_MAX_ATTEMPTS", "")
    return int(text) if text.isdigit() and int(text) > 0 else MAX_ATTEMPTS


def timeouts() -> tuple[float, float]:
    """(connect, read) seconds: ``ENVELOPE_KMS_TIMEOUT`` for both if it is a positive number."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV, ""))
    except ValueError:
        return CONNECT_TIMEOUT, READ_TIMEOUT
    return (value, value) if 0 < value < float("inf") else (CONNECT_TIMEOUT, READ_TIMEOUT)


class KmsClients:
    """Clients by region for one profile; thread-safe, each made once."""

    def __init__(self, profile: str | None = None, client: Any = None) -> None:
        self._profile = profile
        self._given = client
        self._clients: dict[str | None, Any] = {}
        self._lock = threading.Lock()
        self._token = os.urandom(16).hex()
        self._session: Any = None

    def prepare(self) -> None:
        """Fail now, not at the first call, if boto3 is missing (a client given ready-made needs nothing)."""
        if self._given is None:
            _import_boto3()

    def session(self) -> Any:
        """The one boto3 session every client here comes from (so one credentials chain, resolved once):
        the process's, as the environment was when first asked."""
        with self._lock:
            if self._session is None:
                self._session = make_session(self._profile)
            return self._session

    def identity(self, region: str | None) -> tuple[str, ...]:
        """Who calls KMS through these clients, and where: for a data-key cache's partition.

        The access key id (never the secret or the session token), the
        profile, the region a call to *region* goes to and the endpoint
        override.  A client given ready-made stands for itself alone.
        """
        if self._given is not None:
            return ("client", self._token)
        session = self.session()
        from botocore.exceptions import BotoCoreError

        try:
            with session_lock():
                credentials = session.get_credentials()
                resolved = region or session.region_name or ""
        except BotoCoreError as exc:
            raise KeyringError(f"cannot set up AWS KMS: {' '.join(str(exc).split())}") from None
        access_key = credentials.access_key if credentials is not None else ""
        endpoint = os.environ.get("AWS_ENDPOINT_URL_KMS") or os.environ.get("AWS_ENDPOINT_URL") or ""
        return ("aws", self._profile or "", resolved, endpoint, access_key)

    def get(self, region: str | None) -> Any:
        if self._given is not None:
            return self._given
        session = self.session()
        with self._lock:
            if region not in self._clients:
                self._clients[region] = make_client(region, self._profile, session)
            return self._clients[region]

    def call(self, reference: str, region: str | None, operation: str, **kwargs: Any) -> Any:
        """One KMS request; any failure becomes a one-line :class:`KeyringError` naming *reference*."""
        client = self.get(region)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            with _slots:
                return getattr(client, _METHODS[operation])(**kwargs)
        except ClientError as exc:
            raise client_error(reference, operation, exc) from None
        except BotoCoreError as exc:
            raise KeyringError(f"{reference}: {operation} failed: {' '.join(str(exc).split())}") from None


def client_error(reference: str, operation: str, exc: Any) -> KeyringError:
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "Error")), " ".join(str(error.get("Message", "")).split())
    text = f"{reference}: {operation} refused by AWS KMS ({code}): {message}".rstrip(": ")
    if code == "DisabledException":
        return KeyStateError(f"{reference}: the key is disabled ({code}): {message}".rstrip(": "))
    if code == "KMSInvalidStateException":
        return KeyStateError(f"{reference}: the key is not usable in its current state, e.g. pending deletion "
                             f"({code}): {message}".rstrip(": "))
    if code == "NotFoundException":
        return KeyNotFoundError(text)
    if code == "AccessDeniedException":
        return AccessDeniedError(f"{reference}: access denied to {operation} ({code}): {message}".rstrip(": "))
    if code == "InvalidCiphertextException":
        return KeyringError(f"{reference}: wrong encryption context, or not this key's ciphertext ({code})")
    if code in ("ThrottlingException", "RequestLimitExceeded"):
        attempts = 1 + int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", max_attempts() - 1))
        return KeyringError(f"{reference}: AWS KMS is throttling requests; gave up after {attempts} attempts")
    return KeyringError(text)
