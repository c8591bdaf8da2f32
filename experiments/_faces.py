"""What the layer packages share: a package's face names its public names and imports each one only
when it is first used (PEP 562), so ``import experiments.report`` does not import torch, and the old
flat module names keep working for a while."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import warnings


def lazy(package: str, public: dict):
    """``__getattr__`` and ``__dir__`` for a package whose ``public`` maps each name to its module."""
    def __getattr__(name):
        if name in public:
            return getattr(importlib.import_module(f"{package}.{public[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(public)

    return __getattr__, __dir__


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``experiments.<old flat name>`` is the module at its new place (the same module object), with a
    FutureWarning naming that place: the modules moved into layer packages in version 0.2."""

    def __init__(self, package: str, moved: dict):
        self.package, self.moved = package, moved

    def find_spec(self, fullname, path=None, target=None):
        head, _, tail = fullname.partition(".")
        if head == self.package and tail in self.moved:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = f"{self.package}.{self.moved[spec.name.partition('.')[2]]}"
        warnings.warn(f"{spec.name} moved to {new} (docs/api.md lists the public places); the old name will go",
                      FutureWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module):
        pass  # the module at its new place is already executed
