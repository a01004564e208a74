"""Who is calling: the principal named in key policies, grants and every audit row.

A local keystore has no sign-in.  The caller is the operating-system user
(``local:user/NAME``) unless ``--as PRINCIPAL`` or ``$ENVELOPE_PRINCIPAL``
names another, which is how a service account or a test acts as several
people.  That is a statement of identity, not a proof of it: key policies on a
local keystore keep honest people in their lanes, and model what AWS KMS will
enforce, but anyone who can read the keystore file and its key file holds every
key whatever the policy says.  File permissions (0600) are the boundary.

``local:root`` stands for the keystore's owner, the principal that created
it, as an account's root does in AWS: the default key policy gives it and the
key's creator full access.

A server answering many callers through one keystore object says who each
call is from with :func:`calling_as`: a context variable, so each thread (or
task) carries its own caller, and every policy check, grant and audit row of
the calls made inside it names that principal, its source address and the
access key that proved it.  Outside any ``calling_as`` the keystore's own
principal (above) calls.

Principals map onto AWS's ARNs one to one, for SDKs that send ARNs (a grant's
grantee) and for readers of policies written for AWS: ``local:user/NAME`` is
``arn:aws:iam::ACCOUNT:user/NAME``, ``local:role/NAME`` is
``arn:aws:iam::ACCOUNT:role/NAME``, ``local:service/NAME`` is the service
principal ``NAME.amazonaws.com``, and ``local:root`` is ``arn:aws:iam::ACCOUNT:root``
(:func:`to_arn`, :func:`from_arn`).  Policies and ``aws:PrincipalArn``
conditions compare the ``local:`` form.
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
import os
import re
from collections.abc import Iterator
from typing import NamedTuple

from ...exceptions import UsageError

PRINCIPAL_ENV = "ENVELOPE_PRINCIPAL"
ROOT = "local:root"
_KINDS = ("user", "role", "service")
_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
_PRINCIPAL = re.compile(rf"local:(?:{'|'.join(_KINDS)})/{_NAME.pattern}")
_ARN = re.compile(rf"arn:aws[a-z-]*:iam::[0-9A-Za-z]{{1,32}}:"
                  rf"(?:(root)|(user|role)/(?:[A-Za-z0-9_+=,.@/-]{{0,512}}/)?({_NAME.pattern}))")
_SERVICE = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}\.amazonaws\.com")


class CallerIdentity(NamedTuple):
    """Who one call is from: an authenticated principal, the address it came from, the access key it used."""

    principal: str
    source: str | None = None
    access_key_id: str | None = None


_CALLER: contextvars.ContextVar[CallerIdentity | None] = contextvars.ContextVar("envelope_kms_caller", default=None)


def normalize(text: str) -> str:
    """``alice`` -> ``local:user/alice``; ``local:role/backup`` and ``local:root`` as they are."""
    if not isinstance(text, str):
        raise UsageError("a principal must be a string")
    if text == ROOT or _PRINCIPAL.fullmatch(text):
        return text
    if _NAME.fullmatch(text):
        return f"local:user/{text}"
    raise UsageError(f"invalid principal {text!r}: expected NAME, local:user/NAME, local:role/NAME, "
                     f"local:service/NAME or {ROOT}")


def current(explicit: str | None = None) -> str:
    """The caller: *explicit*, else ``$ENVELOPE_PRINCIPAL``, else the OS user."""
    chosen = explicit or os.environ.get(PRINCIPAL_ENV)
    if chosen:
        return normalize(chosen)
    return f"local:user/{_os_user()}"


def _os_user() -> str:
    try:
        name = getpass.getuser()
    except Exception:  # no login name in the environment or the password database
        name = ""
    if _NAME.fullmatch(name):
        return name
    return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


@contextlib.contextmanager
def calling_as(principal: str, *, source: str | None = None,
               access_key_id: str | None = None) -> Iterator[CallerIdentity]:
    """Run the keystore calls made inside as *principal* (this thread or task only), recorded with *source*.

    A context variable, not an attribute of the keystore, so one keystore object
    can serve concurrent callers without one's identity leaking into another's
    call.  (``loop.run_in_executor`` does not carry context variables into its
    thread; enter ``calling_as`` in the thread, or use ``asyncio.to_thread``.)
    """
    caller = CallerIdentity(normalize(principal), source, access_key_id)
    token = _CALLER.set(caller)
    try:
        yield caller
    finally:
        _CALLER.reset(token)


def calling() -> CallerIdentity | None:
    """The caller set by the innermost :func:`calling_as`, or None outside any."""
    return _CALLER.get()


def to_arn(principal: str, account: str) -> str:
    """``local:user/alice`` -> ``arn:aws:iam::ACCOUNT:user/alice`` (see the module's table)."""
    principal = normalize(principal)
    if principal == ROOT:
        return f"arn:aws:iam::{account}:root"
    kind, name = principal[len("local:"):].split("/", 1)
    return f"{name}.amazonaws.com" if kind == "service" else f"arn:aws:iam::{account}:{kind}/{name}"


def from_arn(text: str) -> str:
    """An IAM ARN (or a service principal) as the keystore's principal; anything else is normalized as is."""
    match = _ARN.fullmatch(text) if isinstance(text, str) else None
    if match:
        return ROOT if match.group(1) else f"local:{match.group(2)}/{match.group(3)}"
    if isinstance(text, str) and _SERVICE.fullmatch(text):
        return f"local:service/{text.split('.', 1)[0]}"
    return normalize(text)
