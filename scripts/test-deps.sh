#!/usr/bin/env bash
# What the tests need besides Rust, Postgres and the broker: a Python with the CloudEvents
# SDK (a test reads the events as another team's consumer would), in .tools/test-venv: apart
# from the venv of `make deploy-check`, which replaces its own whole when its tools change.
# Idempotent: installs only when the requirements changed.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=command-service/tests/cloudevents/requirements.txt
venv=.tools/test-venv
marker="$venv/.requirements"
if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$marker"; then
  exit 0
fi
python3 -m venv "$venv" 2>/dev/null || {
  echo "python3 -m venv failed; installing Debian's python3-venv" >&2
  apt-get install -y -q python3-venv >/dev/null
  python3 -m venv "$venv"
}
"$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
cp "$requirements" "$marker"
echo "test dependencies installed in $venv"
