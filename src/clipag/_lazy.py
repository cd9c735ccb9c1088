"""Package attributes imported on first use (PEP 562), so `import clipag` and `clipag --help` do not
load torch, open_clip and kornia until a name that needs them is used."""
from __future__ import annotations

import importlib
import sys
import types


def lazy_exports(package: str, exports: dict[str, str]):
    """`__getattr__` and `__dir__` for a package whose `exports` map each public name to its module.

    An export named like its own module (`clipag.generate`, the function in `clipag/generate.py`) stays
    the export: importing the submodule would otherwise rebind the package's attribute to the module."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(sys.modules[package])))

    shadowed = {name for name, module in exports.items() if module == f".{name}"}
    if shadowed:
        sys.modules[package].__class__ = _keeping(shadowed)
    return __getattr__, __dir__


def _keeping(names: set[str]) -> type:
    class Package(types.ModuleType):
        def __setattr__(self, name, value):
            if name in names and isinstance(value, types.ModuleType):
                value = getattr(value, name)  # the import system binding the submodule: keep the export
            super().__setattr__(name, value)
    return Package
