"""From a reference string (``scheme:rest``) to a keyring: the one place that knows the schemes.

Built-in schemes are modules imported on first use, so a command that does not
touch AWS never imports boto3.  A built-in name always wins over a plugin of the
same name: installing a package must not silently change what ``local:`` means.  Third-party key managers register a factory
under the ``envelope.keyrings`` entry-point group, named by their scheme::

    [project.entry-points."envelope.keyrings"]
    pkcs11 = "my_package.keyring:from_reference"

A factory takes the text after the colon and keyword options, and returns a
:class:`~envelope.keyrings.base.Keyring`.

A reference without a scheme that is spelled as ``envelope keys`` spells the
local keystore's keys (``alias/db``, a key id, an ``arn:envelope:kms:`` ARN)
means that key: ``local:`` is implied, and *notify* hears so once per process.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable

from ..exceptions import UsageError
from .base import Keyring, MultiKeyring

ENTRY_POINT_GROUP = "envelope.keyrings"
#: The key used when ``encrypt-file`` is given no ``--key``.
DEFAULT_KEY_REFERENCE = "local:alias/envelope/default"

_BUILTIN: dict[str, str] = {
    "local": "envelope.keyrings.local",
    "raw-aes": "envelope.keyrings.raw_aes",
    "aws-kms": "envelope.keyrings.aws_kms",
    "aws-kms-discovery": "envelope.keyrings.aws_kms_discovery",
    "rsa-public": "envelope.keyrings.rsa_public",
}

Factory = Callable[..., Keyring]
Notify = Callable[[str], object]

LOCAL_SCHEME = "local"
#: How ``envelope keys`` names a key of the local keystore: an alias, a key id (UUID or mrk-), its ARN.
_LOCAL_SPELLING = re.compile(r"alias/.+|arn:envelope:kms:.+|mrk-[0-9a-f]{32}|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}",
                             re.DOTALL)
_NOTED: set[str] = set()


def _factory(scheme: str) -> Factory:
    module = _BUILTIN.get(scheme)
    if module is not None:
        return importlib.import_module(module).from_reference  # type: ignore[no-any-return]
    for ep in _plugins():
        if ep.name == scheme:
            try:
                return ep.load()  # type: ignore[no-any-return]
            except Exception as exc:  # a broken plugin is the user's setup problem, not a crash
                raise UsageError(f"key scheme {scheme!r}: its plugin {ep.value} failed to load "
                                 f"({type(exc).__name__}: {exc})") from None
    raise UsageError(f"unknown key scheme {scheme!r} in key reference (known: {', '.join(schemes())})")


def _plugins() -> list:  # type: ignore[type-arg]
    # Imported here: scanning installed distributions costs tens of milliseconds,
    # paid only when a reference names a scheme that is not built in.
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def schemes() -> list[str]:
    names = set(_BUILTIN) | {ep.name for ep in _plugins()}
    return sorted(names)


def implied_local(reference: str, notify: Notify | None = None) -> bool:
    """Whether *reference* is a local keystore key spelled without its scheme (``alias/db``).

    *notify* is told which key that means, once per reference in this process:
    commands whose workers resolve references elsewhere (bulk) say it here.
    """
    if not _LOCAL_SPELLING.fullmatch(reference):
        return False
    if notify is not None and reference not in _NOTED:
        _NOTED.add(reference)
        notify(f"key {reference} has no scheme: using {LOCAL_SCHEME}:{reference}, the local keystore's key")
    return True


def resolve(reference: str, notify: Notify | None = None, **options: object) -> Keyring:
    """Turn ``scheme:rest`` into a keyring; options go to the scheme's factory.

    A local keystore key spelled without its scheme (``alias/db``) is ``local:alias/db``;
    *notify* is told so, once per reference in this process.
    """
    if implied_local(reference, notify):
        return _factory(LOCAL_SCHEME)(reference, **options)
    scheme, sep, rest = reference.partition(":")
    if not sep or not scheme:
        raise UsageError(f"key reference {reference!r} has no scheme; expected e.g. local:alias/NAME or raw-aes:PATH")
    return _factory(scheme)(rest, **options)


def resolve_all(references: Iterable[str], notify: Notify | None = None, **options: object) -> MultiKeyring:
    return MultiKeyring(resolve(ref, notify, **options) for ref in references)
