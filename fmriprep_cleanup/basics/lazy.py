"""Lazy package faces: a stage's __init__ names its public API, and a name's module is imported on first use,
so importing one module of the package (as the command line does) does not import the whole stage."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_face(package: str, names: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose public ``names`` live in its submodules
    (name -> submodule, relative to the package)."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f".{module}", package), name)

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
