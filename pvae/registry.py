"""Registries of parts by name: pvae's own, found in their package, and plug-ins from entry points
(docs/architecture.md, "Plug-ins").

A ``Registry`` maps names to the parts of one sort: model classes (``models.MODELS``), guide classes
(``guides.GUIDES``), objective classes (``pvae.objectives.OBJECTIVES``) or data kinds
(``pvae.kinds.KINDS``). It is read once, on first use:

- pvae's own: every class defined in a module of its package (one level down: the modules of
  ``models/``, the subpackages of ``pvae/kinds/``) that subclasses the sort's base class and has a
  ``name`` of its own. Adding one is adding its file. They come in the order in which the package's
  ``__all__`` names them or their modules (``models``: gaussian, linear, sketch, ...; the kinds:
  image, strokes, events), then by module.
- plug-ins: the entry points of the sort's group (``pvae.models``, ``pvae.guides``,
  ``pvae.objectives``, ``pvae.kinds``), each naming one such class, as an installed package's
  ``pyproject.toml`` declares them:

      [project.entry-points."pvae.models"]
      mine = "my_package.vae:MyVAE"

  The entry point's name is the class's own ``name``. A plug-in that fails to import, names
  something that is not a part of this sort, or takes a name already taken, is left out with one
  line (a ``PluginWarning``) that names its package, so that a broken plug-in never breaks
  ``pvae --help`` or the parts that work.

Reading by name, not by import, is what keeps the layers apart: the core asks for a data kind by
the name a run folder saved, and imports none of them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, Generic, TypeVar

from pvae.errors import UserError

T = TypeVar("T")


class PluginWarning(UserWarning):
    """A plug-in left out of its registry (it failed to import, is not a part, or its name is taken)."""


class Registry(MutableMapping[str, T], Generic[T]):
    """Parts of one sort by name (a mapping, filled on first use). A part may also be registered in
    the running process by assignment, ``MODELS["mine"] = MyVAE`` (a notebook's own model).

    :param sort: what a part is, for messages ("model", "data kind").
    :param base: the class every part subclasses.
    :param package: the package whose modules hold pvae's own parts.
    :param group: the entry-point group of plug-ins.
    :param instances: register an instance of each class (data kinds) rather than the class.
    :param check: ``check(part, parts)``: what keeps a plug-in's part from joining the ``parts`` read
        so far (one line), or ``None`` (a data kind: a ``--data`` scheme already taken).
    :ivar version: counts the assignments and deletions, so that what is gathered from the parts
        (``pvae.options``) can tell when to gather again.
    """

    def __init__(
        self,
        sort: str,
        base: type,
        package: str,
        group: str,
        instances: bool = False,
        check: Callable[[Any, Mapping[str, Any]], str | None] | None = None,
    ) -> None:
        self.sort, self.base, self.package, self.group, self.instances = sort, base, package, group, instances
        self.check, self.version = check, 0
        self._entries: dict[str, T] | None = None
        self._origins: dict[str, str] = {}

    def __getitem__(self, name: str) -> T:
        return self._read()[name]

    def __setitem__(self, name: str, part: T) -> None:
        cls = type(part) if self.instances else part
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"a {self.sort} is a subclass of {self.base.__qualname__}, not {part!r}")
        if self.instances and part.name != name:  # a run folder names its data kind by the kind's own name
            raise ValueError(f"the {self.sort} {part.name!r} is registered under its own name, not {name!r}")
        self._read()[name] = part
        self._origins[name] = "this process"
        self.version += 1

    def __delitem__(self, name: str) -> None:
        del self._read()[name]
        del self._origins[name]
        self.version += 1

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __repr__(self) -> str:
        return f"Registry({self.sort}: {', '.join(self)})"

    def origin(self, name: str) -> str:
        """Where the part called ``name`` comes from: ``"pvae"``, the plug-in's package, or
        ``"this process"`` (registered by assignment)."""
        self._read()
        return self._origins[name]

    def class_named(self, name: str) -> T:
        """The registered class called ``name`` (its ``__name__``), for a package's ``__getattr__``
        (PEP 562), so that ``from models import GaussianVAE`` works; ``AttributeError`` otherwise."""
        if not name.startswith("__"):  # not the module attributes Python looks up (__all__, __path__)
            for part in self.values():
                if getattr(part, "__name__", None) == name:
                    return part
        raise AttributeError(f"module {self.package!r} has no attribute {name!r}")

    def _read(self) -> dict[str, T]:
        if self._entries is None:
            # Filled in place: a part's module that asks its registry while it is read (a plug-in's
            # ``from models import GaussianVAE``) finds pvae's own parts already there.
            self._entries = entries = {}
            try:
                for cls in self._builtins():
                    if cls.name in entries:
                        raise TypeError(f"two of pvae's {self.sort}s are called {cls.name!r}")
                    entries[cls.name] = cls() if self.instances else cls
                    self._origins[cls.name] = "pvae"
                points = sorted(importlib.metadata.entry_points(group=self.group), key=lambda p: (p.name, p.value))
                for point in points:  # sorted: the same order on every machine
                    try:  # a plug-in that cannot be registered is left out, said in one line: pvae still runs
                        entries[point.name], self._origins[point.name] = self._plugin(point, entries)
                    except UserError as e:
                        warnings.warn(str(e), PluginWarning, stacklevel=2)
            except BaseException:
                self._entries = None  # read again next time, not half
                raise
        return self._entries

    def _builtins(self) -> list[type]:
        """pvae's own parts: the named subclasses of ``base`` defined in the package's modules, those
        the package's ``__all__`` names (by class or by module) first, in its order."""
        package = importlib.import_module(self.package)
        found = []
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{self.package}.{info.name}")
            found += [
                value
                for value in vars(module).values()
                if isinstance(value, type)
                and issubclass(value, self.base)
                and value.__module__ == module.__name__
                and "name" in vars(value)
            ]
        order = {name: i for i, name in enumerate(vars(package).get("__all__", ()))}
        last = len(order)

        def place(cls: type) -> int:  # where __all__ names the class, or its module
            return min(order.get(cls.__name__, last), order.get(cls.__module__.split(".")[-1], last))

        return sorted(found, key=place)

    def _plugin(self, point: importlib.metadata.EntryPoint, entries: dict[str, T]) -> tuple[Any, str]:
        """The part an entry point names (its class, or an instance of it for ``instances``) and the
        package it comes from; ``UserError`` if it is not a part of this sort called by the entry
        point's name, or its name is taken in ``entries``, or ``check`` refuses it."""
        where = point.dist.name if point.dist is not None else point.value.partition(":")[0]
        said = f"plug-in {where}: entry point {point.name} = {point.value} (group {self.group})"
        if point.name in entries:
            origin = self._origins[point.name]
            taken = "pvae's own" if origin == "pvae" else f"plug-in {origin}'s"
            raise UserError(f"{said}: clashes with {taken} {self.sort} of that name; left out (rename it)")
        try:
            cls = point.load()
        except Exception as e:  # whatever the plug-in's import raises, said in one line
            raise UserError(f"{said} failed to import: {type(e).__name__}: {e}; left out") from None
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise UserError(
                f"{said} is not a {self.sort} (a subclass of {self.base.__module__}.{self.base.__qualname__}); left out"
            )
        if vars(cls).get("name") != point.name:
            raise UserError(
                f"{said}: the class must say name = {point.name!r} itself (it has {getattr(cls, 'name', None)!r}); "
                "left out"
            )
        try:
            part = cls() if self.instances else cls
        except Exception as e:
            raise UserError(f"{said}: {cls.__qualname__}() failed: {type(e).__name__}: {e}; left out") from None
        complaint = None if self.check is None else self.check(part, entries)
        if complaint is not None:
            raise UserError(f"{said}: {complaint}; left out")
        return part, where
