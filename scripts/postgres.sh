#!/usr/bin/env bash
# Makes sure PostgreSQL answers on 127.0.0.1:5432, starting the local cluster when it is down.
set -euo pipefail

if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  exit 0
fi
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -1)
  echo "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
    sleep 0.2
  done
fi
echo "PostgreSQL does not answer on 127.0.0.1:5432; start it (trust auth for the postgres role)." >&2
exit 1
