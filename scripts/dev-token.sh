#!/usr/bin/env bash
# A development token issuer: prints an access token for grpcurl, signed with a local key
# whose JWK Set is .run/dev-jwks.json. Run the services against it with
#   AUTH_MODE=jwt AUTH_JWKS=.run/dev-jwks.json AUTH_ISSUER=https://dev.users.local/ \
#   AUTH_AUDIENCE=users make run
# Usage: scripts/dev-token.sh [SCOPE ...] (default: users.read users.write); SUB=alice to
# choose the subject. The key is made once and kept in .run/.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.tools/token-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "pyjwt[crypto]==2.10.1" >&2
fi
mkdir -p .run
scopes="${*:-users.read users.write}"
SCOPES="$scopes" SUB="${SUB:-developer}" "$venv/bin/python" - <<'PY'
import json, os, pathlib, time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

key_file = pathlib.Path(".run/dev-issuer-key.pem")
if not key_file.exists():
    key = ec.generate_private_key(ec.SECP256R1())
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    key_file.chmod(0o600)
key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
jwk.update({"kid": "dev-1", "alg": "ES256", "use": "sig"})
pathlib.Path(".run/dev-jwks.json").write_text(json.dumps({"keys": [jwk]}))
now = int(time.time())
claims = {
    "iss": "https://dev.users.local/", "aud": "users", "sub": os.environ["SUB"],
    "scope": os.environ["SCOPES"], "iat": now, "nbf": now, "exp": now + 3600,
}
print(jwt.encode(claims, key, algorithm="ES256", headers={"kid": "dev-1"}))
PY
