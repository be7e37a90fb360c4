"""What is running: the compiled hot path (mypyc) or its pure-Python source.

``edge/compiled.txt`` lists the modules ``setup.py`` compiles. Each of them runs from
its extension (``.so``) when one was built, or from its ``.py`` when none was or when
``EDGE_NO_EXTENSIONS`` is set (then ``edge/__init__.py`` installs ``SourceOnlyFinder``
so that no ``edge.*`` module loads from an extension).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.resources import files
from types import ModuleType

NO_EXTENSIONS_ENV = "EDGE_NO_EXTENSIONS"


def extensions_disabled() -> bool:
    """True when ``EDGE_NO_EXTENSIONS`` is set to anything but "", "0" or "false"."""
    return os.environ.get(NO_EXTENSIONS_ENV, "").strip().lower() not in ("", "0", "false", "no")


def listed_modules() -> tuple[str, ...]:
    """The modules ``edge/compiled.txt`` names, in its order."""
    text = files("edge").joinpath("compiled.txt").read_text(encoding="utf-8")
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return tuple(line for line in lines if line)


def is_compiled(module: ModuleType) -> bool:
    """True when ``module`` was loaded from an extension module, not from source."""
    return isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)


def compiled_modules() -> tuple[str, ...]:
    """The listed modules that run (or will run, once imported) from an extension."""
    found = []
    for name in listed_modules():
        module = sys.modules.get(name)
        if module is not None:
            compiled = is_compiled(module)
        else:
            spec = importlib.util.find_spec(name)
            compiled = spec is not None and isinstance(
                spec.loader, importlib.machinery.ExtensionFileLoader
            )
        if compiled:
            found.append(name)
    return tuple(found)


def stale_modules() -> tuple[str, ...]:
    """Compiled modules whose ``.py`` changed after their extension was built.

    An editable install keeps the extension beside the source in the checkout: edited
    since, the extension still runs the old code until ``scripts/test`` (or ``pip
    install -e .``) rebuilds it.
    """
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(checkout, "setup.py")):
        return ()  # installed (a wheel): the sources never change after the build
    stale = []
    for name in compiled_modules():
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        extension = spec.origin
        source = os.path.join(os.path.dirname(extension), name.rsplit(".", 1)[1] + ".py")
        if os.path.exists(source) and os.path.getmtime(source) > os.path.getmtime(extension):
            stale.append(name)
    return tuple(stale)


def describe() -> str:
    """One line for ``edge --version`` and the daemon's start log."""
    if extensions_disabled():
        return f"pure Python ({NO_EXTENSIONS_ENV}=1)"
    compiled = compiled_modules()
    if not compiled:
        return "pure Python (not built)"
    missing = len(listed_modules()) - len(compiled)
    tail = f", {missing} listed modules run from source" if missing else ""
    stale = stale_modules()
    if stale:
        tail += f"; STALE, edited since the build: {', '.join(stale)} (run scripts/test)"
    return f"compiled: {len(compiled)} modules{tail}"


class SourceOnlyFinder(MetaPathFinder):
    """Finds ``edge.*`` modules from their ``.py`` files only, never an extension."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("edge.") or path is None:
            return None
        source_only = [(importlib.machinery.SourceFileLoader, [".py"])]
        for entry in path:
            finder = importlib.machinery.FileFinder(entry, *source_only)
            spec = finder.find_spec(fullname)
            if spec is not None:
                return spec
        if fullname.endswith("__mypyc"):  # the compiled code itself has no source
            raise ModuleNotFoundError(f"{NO_EXTENSIONS_ENV} is set: {fullname} is not loaded")
        return None


def install_source_only_finder() -> None:
    """Put ``SourceOnlyFinder`` first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, SourceOnlyFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, SourceOnlyFinder())
