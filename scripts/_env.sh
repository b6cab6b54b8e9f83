# Sourced by scripts/demo.sh and scripts/test.sh: create/refresh .venv from the project's own files.
# Idempotent: reinstalls only when pyproject.toml, demo/pyproject.toml or scripts/install.sh changed since the
# last install (scripts/install.sh installs the library and the demo package).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -z "${VIRTUAL_ENV:-}" ] || [ "${VIRTUAL_ENV}" != "$ROOT/.venv" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
stamp=".venv/.aesmamba-installed"
want="$(cat pyproject.toml demo/pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  python -m pip install -q --upgrade pip
  bash scripts/install.sh
  echo "$want" > "$stamp"
fi
