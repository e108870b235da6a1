"""The ``__repr__``, ``__eq__`` and ``__hash__`` of a frozen dataclass, written once.

``dataclass`` writes and compiles these anew for each class it makes, which is
a third or more of making one: for the settings' 14 classes and the job record
(29 fields), on every command's start. A class that takes them from
:class:`FrozenMethods` is declared ``@dataclass(frozen=True, repr=False,
eq=False)`` and behaves as a plain frozen dataclass does (``tests/test_frozen.py``):

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True, repr=False, eq=False)
... class Point(FrozenMethods):
...     x: int
...     y: int = 0
>>> Point(1), Point(1) == Point(1, 0), hash(Point(1)) == hash((1, 0))
(Point(x=1, y=0), True, True)
"""

from __future__ import annotations

import dataclasses
from typing import Any


class FrozenMethods:
    __slots__ = ()

    def __repr__(self) -> str:
        fields = dataclasses.fields(self)  # type: ignore[arg-type]
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields if f.repr)
        return f"{type(self).__qualname__}({shown})"

    def _compared(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self) if f.compare)  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__ or not isinstance(other, FrozenMethods):
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        fields = dataclasses.fields(self)  # type: ignore[arg-type]
        return hash(tuple(getattr(self, f.name) for f in fields if (f.compare if f.hash is None else f.hash)))
