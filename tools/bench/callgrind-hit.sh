#!/usr/bin/env bash
# Instructions per cached GetUser, counted by callgrind: a figure that does not move with the
# machine's other load, unlike a rate, so binaries can be compared on a busy or noisy host.
#
#   tools/bench/callgrind-hit.sh DIR [CALLS]
#
# DIR holds query-service and bare-grpc release binaries (target/release, or an older build).
# Both answer CALLS GetUser calls of one cached user from h2load; the count covers the calls
# only (callgrind's counters are zeroed once the service is warm), background work included:
# the idle consumers' fetches, which both run.
set -euo pipefail

DIR=${1:?usage: callgrind-hit.sh DIR [CALLS]}
CALLS=${2:-20000}
BROKERS=${KAFKA_BROKERS:-127.0.0.1:9092}
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432}
WORK=$(mktemp -d)
DB="callgrind_$RANDOM$RANDOM"
PREFIX="callgrind-$RANDOM$RANDOM."
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ID=0190d8e4-0000-7000-8000-000000000001
# GetUserRequest { id } in a gRPC frame.
python3 - "$ID" >"$WORK/request" <<'PY_END'
import sys
id = sys.argv[1].encode()
message = b"\x0a" + bytes([len(id)]) + id
sys.stdout.buffer.write(b"\x00" + len(message).to_bytes(4, "big") + message)
PY_END

# Counts the calls of the process with pid $1 on $2, from zeroed counters to a dump.
count() {
  local pid=$1 addr=$2 out
  h2load -n 200 -c 4 -m 16 -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$WORK/request" "http://$addr/user.v1.UserService/GetUser" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  out=$(h2load -n "$CALLS" -c 4 -m 16 -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$WORK/request" "http://$addr/user.v1.UserService/GetUser")
  grep -q "$CALLS succeeded" <<<"$out" || { echo "h2load: not every call succeeded: $out" >&2; exit 1; }
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1
  local total
  total=$(grep -h '^summary:\|^totals:' "$WORK"/cg.out."$pid".* 2>/dev/null | tail -1 | awk '{print $2}')
  echo $((total / CALLS))
}

wait_http() {
  for _ in $(seq 1 600); do
    curl -fs "http://$1/health-check/readiness" >/dev/null 2>&1 && return
    sleep 0.5
  done
  echo "not ready: $1" >&2
  exit 1
}

wait_grpc() {
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return
    sleep 0.5
  done
  echo "not listening: $1" >&2
  exit 1
}

psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null

GRPC=127.0.0.1:$(port)
HTTP=127.0.0.1:$(port)
RUST_LOG=warn KAFKA_FETCH_WAIT=2ms valgrind -q --tool=callgrind --callgrind-out-file="$WORK/cg.out.%p" \
  "$DIR/query-service" --database-url="$PG/$DB?sslmode=disable" --kafka-brokers="$BROKERS" \
  --kafka-topic-prefix="$PREFIX" --kafka-consumer-group="${PREFIX}group" \
  --grpc-addr="$GRPC" --http-addr="$HTTP" >"$WORK/query.log" 2>&1 &
PIDS+=($!)
QUERY=$!
wait_http "$HTTP"
psql -q "$PG/$DB" -c "INSERT INTO user_views (id, first_name, last_name, nickname, email, country, created_at, updated_at, version, deleted) VALUES ('$ID', 'Ada', 'Lovelace', 'ada', 'ada@example.com', 'GB', now(), now(), 1, false)"
service=$(count "$QUERY" "$GRPC")

# The bare server answers the same bytes query-service answered.
RESPONSE_HEX=$(curl -s --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
  --data-binary @"$WORK/request" "http://$GRPC/user.v1.UserService/GetUser" | tail -c +6 | xxd -p | tr -d '\n')
[ -n "$RESPONSE_HEX" ] || { echo "no answer from query-service for $ID" >&2; exit 1; }

BARE=127.0.0.1:$(port)
TOPICS=(user-created_v1 user-updated_v1 user-deleted_v1)
valgrind -q --tool=callgrind --callgrind-out-file="$WORK/cg.out.%p" \
  "$DIR/bare-grpc" "$BARE" "$RESPONSE_HEX" "$BROKERS" "${TOPICS[@]/#/$PREFIX}" >"$WORK/bare.log" 2>&1 &
PIDS+=($!)
BARE_PID=$!
wait_grpc "$BARE"
sleep 2
bare=$(count "$BARE_PID" "$BARE")

ratio=$(python3 -c "print(f'{$bare / $service:.2f}')")
echo "instructions per cached GetUser: query-service $service, bare-grpc $bare;" \
  "at equal cycles per instruction query-service would serve ${ratio}× bare-grpc's rate"
