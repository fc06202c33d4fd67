"""Names of a package imported on first use (PEP 562), so that importing a package does not import every
dependency of every name it exports: a consumer of ``LiveFeatureStream`` needs only the base install
(pyproject.toml's extras; processor-py/tests/test_extras.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose ``exports`` map each public name to the
    submodule (relative, e.g. ``".consumers"``) that defines it. A name, once imported, is stored in the
    package's ``namespace`` (its ``globals()``), so that the next access is a plain attribute lookup."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
