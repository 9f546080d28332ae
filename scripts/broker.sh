#!/usr/bin/env bash
# The local Kafka-compatible broker (tansu, in memory).
#   scripts/broker.sh install   install tansu when it is missing
#   scripts/broker.sh start     install, then start it unless a broker already listens
#   scripts/broker.sh stop      stop the broker this script started
# Idempotent: running start twice leaves one broker.
set -euo pipefail

TANSU_VERSION=0.6.0
HOST=127.0.0.1
PORT=${BROKER_PORT:-9092}
RUN_DIR=${RUN_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.run}
PID_FILE="$RUN_DIR/tansu-$PORT.pid"
LOG_FILE="$RUN_DIR/tansu-$PORT.log"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

listening() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

install() {
  if command -v tansu >/dev/null && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    return
  fi
  echo "installing tansu $TANSU_VERSION (a one-off build of several minutes)..."
  # Without a storage feature tansu cannot start.
  cargo install --locked tansu --version "$TANSU_VERSION" --features dynostore
}

start() {
  if listening; then
    echo "a broker already listens on $HOST:$PORT"
    return
  fi
  install
  mkdir -p "$RUN_DIR"
  # The memory engine forgets every topic when the broker stops; the services create theirs
  # at start. OTEL_EXPORTER_OTLP_ENDPOINT is meant for the services, not the broker.
  env -u OTEL_EXPORTER_OTLP_ENDPOINT nohup tansu broker \
    --listener-url "tcp://$HOST:$PORT" \
    --advertised-listener-url "tcp://$HOST:$PORT" \
    --storage-engine memory://tansu/ \
    --silent >"$LOG_FILE" 2>&1 &
  echo $! >"$PID_FILE"
  for _ in $(seq 1 100); do
    if listening; then
      echo "tansu listening on $HOST:$PORT (pid $(cat "$PID_FILE"), log $LOG_FILE)"
      return
    fi
    sleep 0.1
  done
  echo "tansu did not start; see $LOG_FILE" >&2
  tail -20 "$LOG_FILE" >&2 || true
  exit 1
}

stop() {
  if [ -f "$PID_FILE" ]; then
    kill "$(cat "$PID_FILE")" 2>/dev/null || true
    rm -f "$PID_FILE"
    echo "tansu on $HOST:$PORT stopped"
  fi
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
