# Sourced by ops scripts: make sure .venv exists with the project and dev extras installed.
# Reinstalls only when pyproject.toml changed since the last install.
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO_DIR/.venv"
ensure_venv() {
  local stamp="$VENV/.installed-$(sha256sum "$REPO_DIR/pyproject.toml" | cut -c1-16)"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV ..." >&2
    "${PYTHON_BOOTSTRAP:-python3}" -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ]; then
    echo "installing ksef-pipeline with dev extras into $VENV ..." >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -e "$REPO_DIR[dev]" >&2
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}
