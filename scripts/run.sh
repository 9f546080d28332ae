#!/usr/bin/env bash
# Brings the whole thing up on this machine: Postgres, the broker, and the services with their
# logs in the foreground. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/postgres.sh
started_broker=false
if ! (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
  started_broker=true
fi
scripts/broker.sh start

cargo build --bins

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  if $started_broker; then scripts/broker.sh stop; fi
}
trap cleanup INT TERM EXIT

# The services' defaults suit Apache Kafka; tansu answers a fetch only when its wait ends and
# serves only from record batch starts.
export KAFKA_FETCH_WAIT=${KAFKA_FETCH_WAIT:-2ms} KAFKA_RESUME_REWIND=${KAFKA_RESUME_REWIND:-1000}
for service in command-service query-service; do
  if [ -x "target/debug/$service" ]; then
    "target/debug/$service" &
    pids+=($!)
  fi
done
wait -n "${pids[@]}"
