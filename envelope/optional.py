"""Optional dependencies: imported when first needed, and named with their pip extra when missing.

``pip install envelope`` brings neither the AWS SDK nor a plotting library;
``envelope[aws]``, ``envelope[s3]`` and ``envelope[plot]`` do.  Whatever needs
one imports it through :func:`require`, so a missing one is a single
:class:`~envelope.exceptions.MissingDependencyError` line that says what to
install, never a ``ModuleNotFoundError`` traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .exceptions import MissingDependencyError


def require(module: str, extra: str, needed_for: str) -> ModuleType:
    """Import *module* (e.g. ``"boto3"``), or raise naming the extra that installs it.

    *needed_for* says who asked, for the message: ``"aws-kms keys"``.
    """
    top = module.partition(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.partition(".")[0] != top:
            raise MissingDependencyError(f"{top}, needed for {needed_for}, cannot be imported: {exc.name} is "
                                         f"missing; reinstall with pip install 'envelope[{extra}]'") from None
        raise MissingDependencyError(f"{top} is needed for {needed_for} and is not installed: "
                                     f"pip install 'envelope[{extra}]'") from None
    except ImportError as exc:
        raise MissingDependencyError(f"{top}, needed for {needed_for}, cannot be imported "
                                     f"({' '.join(str(exc).split())}): pip install 'envelope[{extra}]'") from None
