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
"""

from __future__ import annotations

import getpass
import os
import re

from ..exceptions import UsageError

PRINCIPAL_ENV = "ENVELOPE_PRINCIPAL"
ROOT = "local:root"
_KINDS = ("user", "role", "service")
_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
_PRINCIPAL = re.compile(rf"local:(?:{'|'.join(_KINDS)})/{_NAME.pattern}")


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
