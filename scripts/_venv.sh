# Sourced by scripts/run and scripts/test: make .venv and install the project into it,
# only when it is missing or pyproject.toml changed since the last install.
# Usage: ensure_venv EXTRAS   (EXTRAS: "" or "test")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

ensure_venv() {
  local extras="$1" spec="." stamp want
  [ -n "$extras" ] && spec=".[$extras]"
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
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing edge$([ -n "$extras" ] && echo " with [$extras]") into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT$([ -n "$extras" ] && echo "[$extras]")" >&2
    echo "$want" > "$stamp"
  fi
}
