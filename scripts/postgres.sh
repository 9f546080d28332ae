#!/usr/bin/env bash
# Makes sure PostgreSQL answers on 127.0.0.1:5432, starting the local cluster when it is down,
# and that it has what the tests need: the role users_tls, which may connect over TLS only
# (the tests of sslmode), on a cluster with ssl=on.
set -euo pipefail

psql_admin() { psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -v ON_ERROR_STOP=1 -Atq "$@"; }

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    version=$(ls /etc/postgresql | sort -V | tail -1)
    echo "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 50); do
      pg_isready -q -h 127.0.0.1 -p 5432 && break
      sleep 0.2
    done
  fi
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "PostgreSQL does not answer on 127.0.0.1:5432; start it (trust auth for the postgres role)." >&2
  exit 1
fi

psql_admin -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'users_tls') THEN
    CREATE ROLE users_tls LOGIN;
  END IF;
END \$\$"
hba=$(psql_admin -c "SHOW hba_file")
if [ -w "$hba" ] && ! grep -q "users_tls" "$hba"; then
  # First match wins: these go before every other line.
  {
    echo "# The tests of sslmode: users_tls connects over TLS only."
    echo "hostssl   all users_tls 127.0.0.1/32 trust"
    echo "hostnossl all users_tls all          reject"
    echo "local     all users_tls              reject"
    cat "$hba"
  } > "$hba.new"
  cat "$hba.new" > "$hba" && rm -f "$hba.new"
  psql_admin -c "SELECT pg_reload_conf()" >/dev/null
  echo "PostgreSQL: users_tls may connect over TLS only"
fi
if [ "$(psql_admin -c 'SHOW ssl')" != "on" ]; then
  echo "warning: PostgreSQL runs with ssl=off; the sslmode tests need ssl=on (Debian's default)" >&2
fi
