"""The compiled hot path (mypyc) and its pure-Python switch, as a user would check them.

Run normally, the modules ``edge/compiled.txt`` lists must be compiled wherever a C
compiler is present (under CI=true that is a requirement, not a wish). With
``EDGE_NO_EXTENSIONS=1`` every edge module must load from its ``.py``, .so or not.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import edge
from edge import build

ROOT = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI", "").lower() == "true"

# Imports every edge module and prints which ones came from an extension.
LOAD_ALL = """
import importlib, json, pkgutil, sys
import edge, edge.build
for info in pkgutil.walk_packages(edge.__path__, "edge."):
    if not info.name.endswith(("__main__", "__mypyc")):  # mypyc's shared library
        importlib.import_module(info.name)
mods = {
    n: m
    for n, m in sys.modules.items()
    if (n == "edge" or n.startswith("edge.")) and not n.endswith("__mypyc")
}
print(json.dumps({
    "compiled": sorted(n for n, m in mods.items() if edge.build.is_compiled(m)),
    "files": {n: getattr(m, "__file__", None) for n, m in mods.items()},
    "describe": edge.build.describe(),
    "stale": edge.build.stale_modules(),
}))
"""


def compiler_present() -> bool:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return shutil.which(compiler) is not None and headers.exists()


@functools.cache
def load_all(no_extensions: bool) -> dict[str, object]:
    """What a fresh process loads, with or without EDGE_NO_EXTENSIONS=1 (whatever this
    test process was started with)."""
    env = {k: v for k, v in os.environ.items() if k != build.NO_EXTENSIONS_ENV}
    if no_extensions:
        env[build.NO_EXTENSIONS_ENV] = "1"
    done = subprocess.run(
        [sys.executable, "-c", LOAD_ALL],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env=env,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def require_compiled_build() -> None:
    """Skip where nothing could be compiled; under CI=true, fail instead."""
    if compiler_present() and load_all(no_extensions=False)["compiled"]:
        return
    why = "no C compiler" if not compiler_present() else "the hot path is not compiled"
    if CI:
        pytest.fail(f"CI=true: {why}; the suite must run against the compiled hot path")
    pytest.skip(f"{why} (pure-Python install)")


def test_the_list_names_existing_edge_modules_once() -> None:
    listed = build.listed_modules()
    assert listed, "edge/compiled.txt lists no module"
    assert len(set(listed)) == len(listed)
    for name in listed:
        assert name.startswith("edge.")
        assert (ROOT / Path(*name.split("."))).with_suffix(".py").is_file(), name


@pytest.mark.parametrize(
    ("value", "disabled"),
    [("", False), ("0", False), ("false", False), ("no", False), ("1", True), ("yes", True)],
)
def test_the_switch_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, disabled: bool
) -> None:
    monkeypatch.setenv(build.NO_EXTENSIONS_ENV, value)
    assert build.extensions_disabled() is disabled


def test_this_run_uses_what_its_environment_asks_for() -> None:
    """The normal run is compiled (CI: required); the EDGE_NO_EXTENSIONS=1 run is not."""
    if build.extensions_disabled():
        loaded = [m for n, m in sys.modules.items() if n.startswith("edge.")]
        assert [m.__name__ for m in loaded if build.is_compiled(m)] == []
        assert build.compiled_modules() == ()
        assert build.describe() == "pure Python (EDGE_NO_EXTENSIONS=1)"
        return
    require_compiled_build()
    assert set(build.compiled_modules()) == set(build.listed_modules())
    for name in build.listed_modules():
        assert build.is_compiled(importlib.import_module(name)), name
    assert build.describe() == f"compiled: {len(build.listed_modules())} modules"


def test_no_extensions_loads_every_edge_module_from_source() -> None:
    result = load_all(no_extensions=True)
    assert result["compiled"] == []
    files = result["files"]
    assert isinstance(files, dict)
    walked = pkgutil.walk_packages(edge.__path__, "edge.")
    expected = {info.name for info in walked if not info.name.endswith(("__main__", "__mypyc"))}
    assert expected <= set(files)
    assert {n: f for n, f in files.items() if not str(f).endswith(".py")} == {}
    assert result["describe"] == "pure Python (EDGE_NO_EXTENSIONS=1)"


def test_no_compiled_module_was_edited_since_its_build() -> None:
    """A stale extension would run old code: scripts/test rebuilds when sources change."""
    require_compiled_build()
    assert load_all(no_extensions=False)["stale"] == []


def test_a_normal_import_loads_the_listed_modules_compiled() -> None:
    require_compiled_build()
    result = load_all(no_extensions=False)
    assert result["compiled"] == sorted(build.listed_modules())
    assert result["describe"] == f"compiled: {len(build.listed_modules())} modules"


def test_edge_version_says_what_runs() -> None:
    def version(no_extensions: bool) -> str:
        env = {k: v for k, v in os.environ.items() if k != build.NO_EXTENSIONS_ENV}
        if no_extensions:
            env[build.NO_EXTENSIONS_ENV] = "1"
        args = [sys.executable, "-m", "edge", "--version"]
        return subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout

    assert version(True).splitlines() == [
        f"edge {edge.__version__}",
        "hot path: pure Python (EDGE_NO_EXTENSIONS=1)",
    ]
    assert (
        version(False).splitlines()[1] == f"hot path: {load_all(no_extensions=False)['describe']}"
    )


# -- the rebuild stamp of scripts/_venv.sh --------------------------------------------


def stamp_hash(root: Path, env: dict[str, str] | None = None) -> str:
    script = f'source "{root}/scripts/_venv.sh" && build_inputs_hash'
    run_env = {k: v for k, v in os.environ.items() if k != build.NO_EXTENSIONS_ENV}
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env={**run_env, **(env or {})}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of what the stamp reads: scripts/_venv.sh, the build files, edge/."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "_venv.sh", tmp_path / "scripts")
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy(ROOT / name, tmp_path)
    shutil.copytree(ROOT / "edge", tmp_path / "edge", ignore=shutil.ignore_patterns("*.so"))
    return tmp_path


def test_the_stamp_changes_with_a_compiled_modules_source(tree: Path) -> None:
    before = stamp_hash(tree)
    assert stamp_hash(tree) == before
    listed = tree / Path(*build.listed_modules()[0].split(".")).with_suffix(".py")
    listed.write_text(listed.read_text() + "\n# changed\n")
    assert stamp_hash(tree) != before


@pytest.mark.parametrize("changed", ["pyproject.toml", "setup.py", "edge/compiled.txt"])
def test_the_stamp_changes_with_the_build_files(tree: Path, changed: str) -> None:
    before = stamp_hash(tree)
    (tree / changed).write_text((tree / changed).read_text() + "\n# changed\n")
    assert stamp_hash(tree) != before


def test_the_stamp_ignores_modules_that_are_not_compiled(tree: Path) -> None:
    before = stamp_hash(tree)
    other = tree / "edge" / "cli" / "edge.py"
    assert "edge.cli.edge" not in build.listed_modules()
    other.write_text(other.read_text() + "\n# changed\n")
    assert stamp_hash(tree) == before


def build_still_good(root: Path, mode: str, env: dict[str, str]) -> bool:
    stamp = root / "stamp"
    stamp.write_text(f"hash\n{mode}\n")
    script = f'source "{root}/scripts/_venv.sh" && build_still_good "{stamp}"'
    run_env = {k: v for k, v in os.environ.items() if k != build.NO_EXTENSIONS_ENV}
    done = subprocess.run(["bash", "-c", script], env={**run_env, **env})
    return done.returncode == 0


@pytest.mark.parametrize(
    ("mode", "env", "shared_lib", "good"),
    [
        ("compiled", {}, True, True),
        ("compiled", {}, False, False),  # the extensions are gone: rebuild
        ("compiled", {"EDGE_NO_EXTENSIONS": "1"}, True, True),  # the switch does it
        ("pure-requested", {"EDGE_NO_EXTENSIONS": "1"}, False, True),
        ("pure-requested", {}, False, False),  # no longer asked for: compile
        ("pure", {}, False, True),  # no compiler: trying again would not help
    ],
)
def test_when_an_unchanged_tree_is_rebuilt(
    tree: Path, mode: str, env: dict[str, str], shared_lib: bool, good: bool
) -> None:
    if shared_lib:
        (tree / "edge" / "_hotpath__mypyc.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    assert build_still_good(tree, mode, env) is good
