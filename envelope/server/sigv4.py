"""AWS Signature Version 4, checked: who sent this request, proven by the secret only they and we hold.

Every request to the server carries an ``Authorization`` header of the form::

    AWS4-HMAC-SHA256 Credential=AKID/20261207/us-east-1/kms/aws4_request,
        SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=<64 hex digits>

:func:`verify` rebuilds AWS's canonical request from what arrived (method,
canonical URI, sorted and encoded query, the signed headers lower-cased and
trimmed, the SHA-256 of the body), the string to sign (algorithm, timestamp,
credential scope, hash of the canonical request) and the signing key (HMAC
chain over the date, region, service and ``aws4_request``) from the secret the
keystore holds for the access key id, and compares signatures in constant
time.  Only then does it judge the timestamp (at most 5 minutes off, either
way) and return the :class:`Caller`.  Nothing else of the request is looked at
first, so an unsigned or badly signed request touches no key.

The refusals are AWS's, type and text, so SDK code written for AWS handles
them unchanged: ``IncompleteSignatureException`` for a missing or malformed
header, ``UnrecognizedClientException`` for an access key the keystore does
not know or has disabled, ``InvalidSignatureException`` for a wrong signature,
a wrong credential scope or a stale timestamp.  Messages quote only bounded,
printable pieces of the request, never the secret or the expected signature.

What is always required: ``host`` and ``x-amz-date`` among the signed
headers (the older ``Date`` alternative is not accepted; the SDKs all send
``X-Amz-Date``), and ``x-amz-target`` too when present (it names the
operation).  The
payload is always signed (``UNSIGNED-PAYLOAD`` is refused) and an
``X-Amz-Content-Sha256`` header must match the body.  Session tokens
(``X-Amz-Security-Token``) are refused: the keystore issues long-term access
keys only.  HMAC-SHA256 comes from the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, unquote

from ..exceptions import KeyNotFoundError, KeyStateError
from .errors import IncompleteSignatureException, InvalidSignatureException, UnrecognizedClientException

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW = timedelta(minutes=5)
#: Bounds on what is parsed: an honest client's request is far inside them.
MAX_AUTHORIZATION_SIZE = 4096
MAX_SIGNED_HEADERS = 64
MAX_HEADER_VALUE_SIZE = 8192
MAX_PATH_SIZE = 2048
MAX_QUERY_SIZE = 8192

SIGNATURE_MISMATCH = ("The request signature we calculated does not match the signature you provided. "
                      "Check your AWS Secret Access Key and signing method. "
                      "Consult the service documentation for details.")
INVALID_TOKEN = "The security token included in the request is invalid."
MISSING_TOKEN = "Missing Authentication Token"

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]{1,128}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")

SecretLookup = Callable[[str], "tuple[str, bytes]"]


@dataclass(frozen=True)
class Caller:
    """Who signed a request: the credential's principal and the access key id it used."""

    principal: str
    access_key_id: str


@dataclass(frozen=True)
class _Authorization:
    access_key_id: str
    scope_date: str
    scope_region: str
    scope_service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def verify(method: str, path: str, query: str, headers: Mapping[str, str], body: bytes, *,
           region: str, secret_for: SecretLookup, now: datetime | None = None, service: str = "kms") -> Caller:
    """The :class:`Caller` who signed this request, or an AWS error saying why it is refused.

    *path* and *query* are as they arrived (percent-encoded, the query without
    its ``?``); *headers* are matched case-insensitively.  *secret_for* maps an
    access key id to (principal, secret) and raises ``KeyNotFoundError`` or
    ``KeyStateError`` for an unknown or disabled key.  *now* is for tests.
    """
    lowered = _lowered(headers)
    auth = _parse_authorization(lowered.get("authorization"))
    amz_date, timestamp = _timestamp(lowered, auth.signed_headers)
    _check_scope(auth, amz_date, region, service)
    if "x-amz-security-token" in lowered:
        raise UnrecognizedClientException(INVALID_TOKEN)
    claimed_hash = lowered.get("x-amz-content-sha256")
    payload_hash = hashlib.sha256(body).hexdigest()
    if claimed_hash is not None and not hmac.compare_digest(claimed_hash.strip().encode(), payload_hash.encode()):
        raise InvalidSignatureException("The provided 'x-amz-content-sha256' header does not match what was "
                                        "computed.")
    canonical = "\n".join((
        method.upper(), canonical_uri(path), canonical_query(query),
        "".join(f"{name}:{_trimmed(lowered[name])}\n" for name in auth.signed_headers),
        ";".join(auth.signed_headers), payload_hash,
    ))
    scope = f"{auth.scope_date}/{auth.scope_region}/{auth.scope_service}/{TERMINATOR}"
    to_sign = "\n".join((ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()))
    try:
        principal, secret = secret_for(auth.access_key_id)
    except (KeyNotFoundError, KeyStateError):
        raise UnrecognizedClientException(INVALID_TOKEN) from None
    expected = _signature(secret, auth.scope_date, auth.scope_region, auth.scope_service, to_sign)
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise InvalidSignatureException(SIGNATURE_MISMATCH)
    _check_skew(amz_date, timestamp, now or datetime.now(timezone.utc))
    return Caller(principal, auth.access_key_id)


def canonical_uri(path: str) -> str:
    """The path with dot segments and empty segments removed, each segment encoded once more (not S3's rule)."""
    if len(path) > MAX_PATH_SIZE:
        raise IncompleteSignatureException("The request path is too long to be signed.")
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    if not segments:
        return "/"
    trailing = "/" if path.endswith("/") else ""
    return quote("/" + "/".join(segments) + trailing, safe="/~")


def canonical_query(query: str) -> str:
    """Each name and value decoded and re-encoded with AWS's unreserved set, sorted by name then value."""
    if len(query) > MAX_QUERY_SIZE:
        raise IncompleteSignatureException("The request query string is too long to be signed.")
    pairs = []
    for pair in query.split("&") if query else ():
        name, _, value = pair.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    return lowered


def _trimmed(value: str) -> str:
    if len(value) > MAX_HEADER_VALUE_SIZE:
        raise IncompleteSignatureException("A signed header is too long.")
    return " ".join(value.split())


def _parse_authorization(value: str | None) -> _Authorization:
    if value is None or not value.strip():
        raise IncompleteSignatureException(MISSING_TOKEN)
    if len(value) > MAX_AUTHORIZATION_SIZE:
        raise IncompleteSignatureException("The Authorization header is too long.")
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureException(f"Unsupported AWS 'algorithm': '{_shown(algorithm)}'. "
                                           f"Only {ALGORITHM} is supported.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, field = part.strip().partition("=")
        if sep and name in ("Credential", "SignedHeaders", "Signature") and name not in fields:
            fields[name] = field.strip()
    missing = [f"Authorization header requires '{name}' parameter."
               for name in ("Credential", "Signature", "SignedHeaders") if not fields.get(name)]
    if missing:
        raise IncompleteSignatureException(" ".join(missing) + f" Authorization={_shown(value)}")
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise IncompleteSignatureException("Credential must have exactly 5 slash-delimited elements, e.g. "
                                           f"keyid/date/region/service/term, got '{_shown(fields['Credential'])}'")
    signed = fields["SignedHeaders"].split(";")
    if len(signed) > MAX_SIGNED_HEADERS or not all(_HEADER_NAME.fullmatch(h) for h in signed):
        raise IncompleteSignatureException(f"Invalid SignedHeaders: '{_shown(fields['SignedHeaders'])}'")
    if signed != sorted(set(signed)):
        raise IncompleteSignatureException("SignedHeaders must be lower-case, sorted and without duplicates: "
                                           f"'{_shown(fields['SignedHeaders'])}'")
    if not _SIGNATURE.fullmatch(fields["Signature"]):
        raise IncompleteSignatureException("The Signature must be 64 lower-case hexadecimal digits.")
    return _Authorization(scope[0], scope[1], scope[2], scope[3], scope[4], tuple(signed), fields["Signature"])


def _timestamp(headers: Mapping[str, str], signed: tuple[str, ...]) -> tuple[str, datetime]:
    """The signed X-Amz-Date, and host signed too; x-amz-target, when sent, must be signed."""
    amz_date = headers.get("x-amz-date")
    if amz_date is None:
        raise IncompleteSignatureException("Authorization header requires existence of either a 'X-Amz-Date' or "
                                           "a 'Date' header.")
    for name in ("host", "x-amz-date") + (("x-amz-target",) if "x-amz-target" in headers else ()):
        if name not in signed:
            raise IncompleteSignatureException(f"'{name}' must be a 'SignedHeader' in the AWS Authorization.")
    for name in signed:
        if name not in headers:
            raise IncompleteSignatureException(f"The signed header '{name}' is missing from the request.")
    amz_date = amz_date.strip()
    try:
        if not _AMZ_DATE.fullmatch(amz_date):
            raise ValueError(amz_date)
        timestamp = datetime(int(amz_date[0:4]), int(amz_date[4:6]), int(amz_date[6:8]), int(amz_date[9:11]),
                             int(amz_date[11:13]), int(amz_date[13:15]), tzinfo=timezone.utc)
    except ValueError:
        raise IncompleteSignatureException(f"Date must be in ISO-8601 'basic format'. Got '{_shown(amz_date)}'. "
                                           "See http://en.wikipedia.org/wiki/ISO_8601") from None
    return amz_date, timestamp


def _check_scope(auth: _Authorization, amz_date: str, region: str, service: str) -> None:
    if auth.scope_date != amz_date[:8]:
        raise InvalidSignatureException(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{_shown(auth.scope_date)}' != '{amz_date[:8]}', from '{amz_date}'.")
    if auth.scope_region != region:
        raise InvalidSignatureException(f"Credential should be scoped to a valid region, not "
                                        f"'{_shown(auth.scope_region)}'. ")
    if auth.scope_service != service:
        raise InvalidSignatureException(f"Credential should be scoped to correct service: '{service}'. ")
    if auth.terminator != TERMINATOR:
        raise InvalidSignatureException(f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
                                        f"not '{_shown(auth.terminator)}'. ")


def _check_skew(amz_date: str, timestamp: datetime, now: datetime) -> None:
    if timestamp < now - MAX_SKEW:
        raise InvalidSignatureException(f"Signature expired: {amz_date} is now earlier than "
                                        f"{_format(now - MAX_SKEW)} ({_format(now)} - 5 min.)")
    if timestamp > now + MAX_SKEW:
        raise InvalidSignatureException(f"Signature not yet current: {amz_date} is still later than "
                                        f"{_format(now + MAX_SKEW)} ({_format(now)} + 5 min.)")


def _signature(secret: bytes, date: str, region: str, service: str, to_sign: str) -> str:
    """HMAC-SHA256 chain: kDate, kRegion, kService, kSigning, then the signature (hex)."""
    seed = bytearray(b"AWS4") + secret
    try:
        key = hmac.digest(seed, date.encode(), "sha256")
    finally:
        seed[:] = bytes(len(seed))
    for part in (region, service, TERMINATOR):
        key = hmac.digest(key, part.encode(), "sha256")
    return hmac.digest(key, to_sign.encode("utf-8"), "sha256").hex()


def _format(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def _shown(text: str, limit: int = 128) -> str:
    """A piece of the request fit to quote back: printable ASCII, bounded."""
    clean = "".join(c if " " <= c <= "~" else "?" for c in text[:limit])
    return clean + ("..." if len(text) > limit else "")
