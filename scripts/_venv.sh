# Sourced by scripts/run and scripts/test: make .venv and install the project into it,
# only when it is missing or what the install depends on changed since the last one.
# Usage: ensure_venv EXTRAS   (EXTRAS: "" or "test")
#
# The install is editable, and compiles the hot path with mypyc (setup.py,
# edge/compiled.txt): the .so files sit beside the .py files, and a stale one would
# silently run old code. So the stamp hashes pyproject.toml, setup.py, the module list,
# every listed module's source and EDGE_NO_EXTENSIONS (set at build time: nothing is
# compiled); a change to any of them rebuilds, nothing else does.
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
    echo "EDGE_NO_EXTENSIONS=${EDGE_NO_EXTENSIONS:-}" # set at build time: a pure build
  } | sha256sum | cut -d' ' -f1
}

# The compiled modules an earlier build left are all still there (a clean, a pure
# build into another environment, or a checkout can remove them).
extensions_present() {
  local stamp="$1"
  grep -q "^compiled$" "$stamp" || return 0
  compgen -G "$ROOT/edge/_hotpath__mypyc*.so" >/dev/null
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
  if [ ! -f "$stamp" ] || [ "$(head -n1 "$stamp")" != "$want" ] || ! extensions_present "$stamp"; then
    echo "installing edge$([ -n "$extras" ] && echo " with [$extras]") into $VENV" \
      "(compiling the hot path with mypyc when a C compiler is present)" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT$([ -n "$extras" ] && echo "[$extras]")" >&2
    local running
    running="$("$VENV/bin/python" -c 'import edge.build as b; print(b.describe())')"
    echo "edge: $running" >&2
    { echo "$want"; case "$running" in compiled*) echo compiled ;; *) echo pure ;; esac; } > "$stamp"
  fi
}
