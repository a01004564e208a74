"""An immutable record whose constructor checks its values, without the dataclasses module.

Creating a dataclass runs generated code through ``exec`` and imports ``inspect``:
milliseconds per class, paid by every command at start-up.  Plain records are
``typing.NamedTuple`` classes; a record that must validate its values on
construction (a NamedTuple cannot override ``__new__``) subclasses
:class:`FrozenRecord` instead, sets ``__slots__`` to its fields and writes an
``__init__`` that checks them and stores them with :meth:`_set`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class FrozenRecord:
    """Equality, hash, repr and pickling by the fields in ``__slots__``; assignment refused.

    ``_hidden`` names fields left out of the repr (key material, opaque blobs).
    """

    __slots__: tuple[str, ...] = ()
    _hidden: ClassVar[frozenset[str]] = frozenset()

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, FrozenRecord)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__ if name not in self._hidden)
        return f"{type(self).__name__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._values())
