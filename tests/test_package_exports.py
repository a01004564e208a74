"""The package's public names: everything ``__all__`` promises can be imported."""

from __future__ import annotations

import envelope
from envelope import exceptions


def test_star_import_gives_every_name_in_all() -> None:
    namespace: dict[str, object] = {}
    exec("from envelope import *", namespace)  # raises AttributeError for a promised name that is missing
    assert set(envelope.__all__) <= set(namespace)


def test_every_public_exception_is_importable_from_the_package() -> None:
    for name in exceptions.__all__:
        assert getattr(envelope, name) is getattr(exceptions, name)
