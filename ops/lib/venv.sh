# Sourced by ops scripts: make sure .venv exists with the project and dev extras installed,
# every dependency from requirements.lock with its hash checked (see docs/security.md).
# Reinstalls only when requirements.lock, pyproject.toml or the pinned pip changed since
# the last install.
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO_DIR/.venv"
ensure_venv() {
  local stamp pip_req
  stamp="$VENV/.installed-$(cat "$REPO_DIR/requirements.lock" "$REPO_DIR/pyproject.toml" \
    "$REPO_DIR/ops/lock-tools.lock" | sha256sum | cut -c1-16)"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV ..." >&2
    "${PYTHON_BOOTSTRAP:-python3}" -m venv "$VENV" || return 1
  fi
  if [ ! -f "$stamp" ]; then
    echo "installing the locked dependencies and ksef-pipeline into $VENV ..." >&2
    rm -f "$VENV"/.installed-*
    # 1. The venv's bootstrap pip installs the pinned pip (version and hashes from
    #    ops/lock-tools.lock). 2. That pip installs requirements.lock: --require-hashes
    #    refuses any file whose sha256 the lock does not list, --no-deps any package it does
    #    not name. 3. The project itself, without dependencies and without build isolation:
    #    its build backend (setuptools, wheel) is in the lock too, not an unhashed download.
    pip_req="$VENV/pip-requirement.txt"
    "$REPO_DIR/ops/lib/pip-requirement" >"$pip_req" \
      && "$VENV/bin/python" -m pip install -q --require-hashes --no-deps -r "$pip_req" >&2 \
      && "$VENV/bin/python" -m pip install -q --require-hashes --no-deps \
        -r "$REPO_DIR/requirements.lock" >&2 \
      && PYTHONWARNINGS="ignore:Editable installation" \
        "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation \
        -e "$REPO_DIR" >&2 \
      || { echo "ensure_venv: installing into $VENV failed" >&2; return 1; }
    touch "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}
