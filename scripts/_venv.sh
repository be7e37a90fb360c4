# Sourced by scripts/run and scripts/test: make .venv and install the project into it,
# only when it is missing or what the install depends on changed since the last one.
# Usage: ensure_venv EXTRAS   (EXTRAS: "" or "test")
#
# The install is editable, and compiles the hot path with mypyc (setup.py,
# edge/compiled.txt): the .so files sit beside the .py files, and a stale one would
# silently run old code. So the stamp hashes pyproject.toml, setup.py, the module list
# and every listed module's source; a change to any of them rebuilds, nothing else does.
# The stamp's second line is how the last build went: "compiled", "pure" (no compiler)
# or "pure-requested" (EDGE_NO_EXTENSIONS was set while building). EDGE_NO_EXTENSIONS
# alone does not rebuild (at run time it loads the .py files anyway), but a build it
# made pure is rebuilt compiled once it is unset.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

# The hash of everything the editable install (and its compiled modules) is built from.
build_inputs_hash() {
  local list="$ROOT/edge/compiled.txt" sources=() module
  if [ -f "$list" ]; then
    while read -r module; do
      [ -n "$module" ] && sources+=("$ROOT/${module//.//}.py")
    done < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list")
  fi
  {
    for file in "$ROOT/pyproject.toml" "$ROOT/setup.py" "$list" "${sources[@]}"; do
      if [ -f "$file" ]; then sha256sum "$file"; else echo "missing $file"; fi
    done | sed "s#$ROOT/##"
  } | sha256sum | cut -d' ' -f1
}

# What the last build left is still what is wanted: its extensions are all there (a
# clean, a checkout or a pure build into another environment can remove them), and a
# build made pure on request is not kept once EDGE_NO_EXTENSIONS is unset.
build_still_good() {
  local stamp="$1" mode
  mode="$(sed -n 2p "$stamp")"
  case "$mode" in
    compiled) compgen -G "$ROOT/edge/_hotpath__mypyc*.so" >/dev/null ;;
    pure-requested) no_extensions_requested ;;
    *) return 0 ;;
  esac
}

no_extensions_requested() {
  case "$(echo "${EDGE_NO_EXTENSIONS:-}" | tr '[:upper:]' '[:lower:]' | tr -d '[:space:]')" in
    "" | 0 | false | no) return 1 ;;
    *) return 0 ;;
  esac
}

ensure_venv() {
  local extras="$1" stamp want
  if [ ! -x "$VENV/bin/python" ]; then
    local py="${PYTHON:-python3}"
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
      echo "error: $py is older than Python 3.11; set PYTHON to a newer interpreter" >&2
      exit 2
    }
    echo "creating $VENV" >&2
    "$py" -m venv "$VENV"
  fi
  stamp="$VENV/.edge-installed-${extras:-base}"
  want="$(build_inputs_hash)"
  if [ ! -f "$stamp" ] || [ "$(head -n1 "$stamp")" != "$want" ] || ! build_still_good "$stamp"; then
    echo "installing edge$([ -n "$extras" ] && echo " with [$extras]") into $VENV" \
      "(compiling the hot path with mypyc when a C compiler is present)" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT$([ -n "$extras" ] && echo "[$extras]")" >&2
    local running
    running="$("$VENV/bin/python" -c 'import edge.build as b; print(b.describe())')"
    echo "edge: $running" >&2
    case "$running" in
      *"not built"*) echo "edge: to see why, run $VENV/bin/pip install -v -e $ROOT" >&2 ;;
    esac
    local mode=pure
    case "$running" in compiled*) mode=compiled ;; esac
    no_extensions_requested && mode=pure-requested
    printf '%s\n%s\n' "$want" "$mode" > "$stamp"
    # An install with the test extras is an install without them too.
    [ "$extras" = test ] && cp "$stamp" "$VENV/.edge-installed-base"
  else
    mark_extensions_fresh
  fi
  return 0
}

# The sources hash as at the last build, so its extensions are current even where a
# checkout or a touch made a .py newer than its .so (edge.build.stale_modules compares
# the two): make them as new as their sources again.
mark_extensions_fresh() {
  local so py
  for so in "$ROOT"/edge/*/*.so; do
    [ -e "$so" ] || continue
    py="${so%%.cpython-*}.py"
    if [ -f "$py" ] && [ "$py" -nt "$so" ]; then touch "$so"; fi
  done
}
