#!/usr/bin/env bash
# Checks the user.v1 protos with buf (rules in buf.yaml): lint, formatting, and breaking
# changes against the protos of HEAD's first parent, so a field renumbered or removed fails.
# Installs the pinned buf from npm into .tools/buf when it is missing.
#
#   scripts/proto-check.sh                      # compare with HEAD^1 (what CI does)
#   PROTO_AGAINST=main scripts/proto-check.sh   # compare with another commit, e.g. a branch's base
#   BUF=/path/to/buf scripts/proto-check.sh     # use a buf of your own
set -euo pipefail
cd "$(dirname "$0")/.."

BUF_VERSION=1.75.0
PROTO_DIR=shared-proto/proto
TOOLS_DIR=.tools/buf

buf=${BUF:-$TOOLS_DIR/node_modules/.bin/buf}
if [[ -z ${BUF:-} && "$("$buf" --version 2>/dev/null)" != "$BUF_VERSION" ]]; then
  if ! command -v npm >/dev/null; then
    echo "proto-check: buf is installed with npm, which is missing: install Node.js," \
      "or set BUF to a buf $BUF_VERSION binary" >&2
    exit 1
  fi
  echo "proto-check: installing buf $BUF_VERSION into $TOOLS_DIR"
  # Scripts off: the package's postinstall only checks that the binary for this platform
  # came along, which the version check below does as well.
  npm install --prefix "$TOOLS_DIR" --ignore-scripts --no-audit --no-fund --loglevel=error \
    "@bufbuild/buf@$BUF_VERSION" >/dev/null
fi
if ! version=$("$buf" --version); then
  echo "proto-check: $buf does not run" >&2
  exit 1
fi
echo "proto-check: buf $version"

echo "proto-check: buf lint"
"$buf" lint
echo "proto-check: buf format"
"$buf" format --diff --exit-code

against=${PROTO_AGAINST:-HEAD^1}
skip() {
  echo "proto-check: buf breaking skipped: $*"
  exit 0
}
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  skip "not a git checkout, so there is no earlier version to compare with"
fi
if ! commit=$(git rev-parse --verify --quiet "$against^{commit}"); then
  if [[ -n ${PROTO_AGAINST:-} ]]; then
    echo "proto-check: PROTO_AGAINST=$against is not a commit" >&2
    exit 1
  fi
  if [[ $(git rev-parse --is-shallow-repository) == true ]]; then
    skip "HEAD's parent is not in this shallow clone (fetch more history to compare)"
  fi
  skip "HEAD has no parent commit"
fi
if ! git cat-file -e "$commit:$PROTO_DIR" 2>/dev/null; then
  skip "$against has no $PROTO_DIR"
fi

# The protos as they were at $against, beside (not inside) the repository, so that buf
# reads them as a plain module and the working tree's buf.yaml does not apply to them.
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
git archive "$commit" "$PROTO_DIR" | tar -x -C "$before"
echo "proto-check: buf breaking against $against ($(git rev-parse --short "$commit"))"
"$buf" breaking "$PROTO_DIR" --against "$before/$PROTO_DIR"
echo "proto-check: ok"
