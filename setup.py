"""Build edge; compile the hot path with mypyc when a C compiler is present.

pyproject.toml holds the project's metadata; this file only adds the extension modules.
The modules compiled are those ``edge/compiled.txt`` lists (one line each). Nothing is
compiled when ``EDGE_NO_EXTENSIONS=1`` is set at build time, or when there is no C
compiler or no Python headers: then edge installs and runs as pure Python.
See docs/PERFORMANCE.md, "Compiled hot path".
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
SHARED_LIB = "edge._hotpath"  # mypyc's shared library: edge/_hotpath__mypyc.*.so
# mypyc type-checks what it compiles. It must not need edge's runtime dependencies or
# the pydantic mypy plugin in pip's isolated build environment, so it gets its own
# minimal configuration (modules it cannot find are typed as Any: they are not
# compiled anyway). ``mypy`` on edge/ still runs strict with pyproject.toml's config.
MYPYC_CONFIG = "[mypy]\nignore_missing_imports = True\n"


def note(message: str) -> None:
    print(f"edge build: {message}", file=sys.stderr, flush=True)


def listed_modules() -> list[str]:
    text = (ROOT / "edge" / "compiled.txt").read_text(encoding="utf-8")
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def why_not_compiled() -> str | None:
    """Why the hot path cannot be compiled here, or None when it can."""
    if os.environ.get("EDGE_NO_EXTENSIONS", "").strip().lower() not in ("", "0", "false", "no"):
        return "EDGE_NO_EXTENSIONS is set"
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler} not found)"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "no Python headers (Python.h; install python3-dev)"
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return "mypyc is not installed (it comes with mypy, a build requirement)"
    return None


def remove_stale_extensions(keep: frozenset[str] = frozenset()) -> None:
    """In an in-place (editable) build, delete the extensions an earlier build left beside
    the sources for modules not compiled now (``keep``: those that are, and their shared
    library): they would run instead of the .py files."""
    if not any(arg in sys.argv for arg in ("editable_wheel", "develop", "--inplace")):
        return
    for so in (ROOT / "edge").rglob("*.so"):
        parts = so.relative_to(ROOT).with_suffix("").with_suffix("").parts
        if ".".join(parts) not in keep:
            so.unlink()


class OptionalBuildExt(build_ext):
    """Compile the extensions; if the C compiler fails, install pure Python instead."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # setuptools raises several unrelated classes
            note(f"compiling failed ({error}); installing pure Python")
            remove_stale_extensions()
            self.extensions = []


# The setup.py commands that build extensions. pip also runs setup.py for metadata
# (egg_info, dist_info), where compiling would only cost time.
BUILDS = ("build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install")


def extensions() -> list[object]:
    if not any(command in sys.argv for command in BUILDS):
        return []
    why = why_not_compiled()
    if why is not None:
        note(f"{why}: installing pure Python, the hot path is not compiled")
        remove_stale_extensions()
        return []
    from mypyc.build import mypycify

    paths = [str(Path(*name.split(".")).with_suffix(".py")) for name in listed_modules()]
    with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as config:
        config.write(MYPYC_CONFIG)
    try:
        modules = mypycify(
            ["--config-file", config.name, *paths], opt_level="3", group_name=SHARED_LIB
        )
    except (Exception, SystemExit) as error:  # mypyc exits on a type error
        note(f"mypyc failed (exit {error}, its errors are above); installing pure Python")
        remove_stale_extensions()
        return []
    finally:
        os.unlink(config.name)
    remove_stale_extensions(frozenset([*listed_modules(), f"{SHARED_LIB}__mypyc"]))
    note(f"compiling {len(paths)} hot-path modules with mypyc")
    return list(modules)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
