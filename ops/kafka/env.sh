# Shared settings for the ops/kafka scripts (sourced, not run).
# KAFKA_VERSION selects the broker: 3.9.x (default) or 4.x (log4j2 backend, Java 17).
KAFKA_VERSION="${KAFKA_VERSION:-3.9.1}"
KSEF_CACHE="${KSEF_CACHE:-$HOME/.cache/ksef-pipeline}"
KAFKA_LIB="$KSEF_CACHE/kafka-$KAFKA_VERSION/lib"
OPS_KAFKA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$OPS_KAFKA_DIR/../.." && pwd)"
# Where a running broker keeps its pid, config, logs and data; one broker per run dir.
KAFKA_RUN_DIR="${KAFKA_RUN_DIR:-$REPO_DIR/var/kafka}"
case "$KAFKA_VERSION" in
  3.*) KAFKA_MAJOR=3 ;;
  4.*) KAFKA_MAJOR=4 ;;
  *) echo "KAFKA_VERSION=$KAFKA_VERSION: only 3.x and 4.x are supported" >&2; exit 2 ;;
esac
PYTHON="${PYTHON:-$REPO_DIR/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
