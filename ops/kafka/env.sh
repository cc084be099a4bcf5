# Shared settings for the ops/kafka scripts (sourced, not run).
# KAFKA_VERSION selects the broker: 3.9.x (default) or 4.x (log4j2 backend, Java 17).
KAFKA_VERSION="${KAFKA_VERSION:-3.9.1}"
KSEF_CACHE="${KSEF_CACHE:-$HOME/.cache/ksef-pipeline}"
KAFKA_LIB="$KSEF_CACHE/kafka-$KAFKA_VERSION/lib"
OPS_KAFKA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$OPS_KAFKA_DIR/../.." && pwd)"
# Where a running broker keeps its pid, config, logs and data; one broker per run dir.
KAFKA_RUN_DIR="${KAFKA_RUN_DIR:-$REPO_DIR/var/kafka}"
case "$KAFKA_RUN_DIR" in
  /*) ;;
  *) KAFKA_RUN_DIR="$PWD/$KAFKA_RUN_DIR" ;;  # the brokers' pid check compares full paths
esac
KAFKA_RUN_DIR="${KAFKA_RUN_DIR%/}"
case "$KAFKA_VERSION" in
  3.*) KAFKA_MAJOR=3 ;;
  4.*) KAFKA_MAJOR=4 ;;
  *) echo "KAFKA_VERSION=$KAFKA_VERSION: only 3.x and 4.x are supported" >&2; exit 2 ;;
esac
PYTHON="${PYTHON:-$REPO_DIR/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3

# A run dir holds one cluster of KAFKA_NODES nodes (each broker+controller, KRaft):
# cluster.env (cluster id, node count, ports), bootstrap, and per node its
# server.properties, data/, pid and logs. A 1-node cluster keeps them in the run dir
# itself, a bigger one in node-1, node-2, ...
KAFKA_STATE="$KAFKA_RUN_DIR/cluster.env"
KAFKA_NODES=1  # set by load_state (never taken from the environment)

# Loads cluster.env into CLUSTER_ID, KAFKA_NODES, BROKER_PORTS, CONTROLLER_PORTS,
# FORMATTED_BY; false when the run dir holds no cluster.
load_state() {
  [ -f "$KAFKA_STATE" ] || return 1
  # shellcheck disable=SC1090
  source "$KAFKA_STATE"
}

node_dir() {
  if [ "${KAFKA_NODES:-1}" = 1 ]; then echo "$KAFKA_RUN_DIR"; else echo "$KAFKA_RUN_DIR/node-$1"; fi
}

# Prints the pid of node $1 when it runs; false otherwise (no pid file, process gone, or
# the pid now belongs to a process that is not this node's broker).
node_pid() {
  local dir pid
  dir=$(node_dir "$1")
  [ -f "$dir/pid" ] || return 1
  pid=$(cat "$dir/pid")
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    # (no pipe: with pipefail an early-exiting grep could fail it by SIGPIPE)
    grep -qxF "$dir/server.properties" < <(tr '\0' '\n' < "/proc/$pid/cmdline") || return 1
  fi
  echo "$pid"
}
