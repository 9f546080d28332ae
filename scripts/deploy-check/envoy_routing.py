"""Runs deploy/envoy.yaml's routes for real: Envoy in front of two stub gRPC servers standing
in for command-service and query-service, on loopback ports. Each user.v1.UserService method
must reach the service that owns it, reflection must reach one of them, an unknown method
neither, and Envoy's gRPC health checks must ask about user.v1.UserService.

Usage: envoy_routing.py ENVOY_BINARY ENVOY_YAML
"""

import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent import futures
from pathlib import Path

import grpc
import yaml
from guards import proto_methods

OWNERS = {
    "CreateUser": "command-service",
    "UpdateUser": "command-service",
    "DeleteUser": "command-service",
    "GetUser": "query-service",
    "ListUsers": "query-service",
    "BatchGetUsers": "query-service",
    "GetUserByEmail": "query-service",
}
SERVICE = "user.v1.UserService"
# grpc.health.v1.HealthCheckResponse{status: SERVING}, encoded by hand: field 1, varint 1.
SERVING = b"\x08\x01"


class Stub(grpc.GenericRpcHandler):
    """Answers every UserService method, the health check and reflection with its own name."""

    def __init__(self, name):
        self.name = name
        self.calls = []
        self.health_requests = []
        self.lock = threading.Lock()

    def service(self, details):
        method = details.method
        if method == "/grpc.health.v1.Health/Check":
            return grpc.unary_unary_rpc_method_handler(self._health)
        if method.startswith("/grpc.reflection."):
            return grpc.stream_stream_rpc_method_handler(self._reflection(method))
        return grpc.unary_unary_rpc_method_handler(self._answer(method))

    def _health(self, request, context):
        with self.lock:
            self.health_requests.append(request)
        return SERVING

    def _answer(self, method):
        def handle(request, context):
            with self.lock:
                self.calls.append(method)
            return self.name.encode()

        return handle

    def _reflection(self, method):
        def handle(requests, context):
            for _ in requests:
                with self.lock:
                    self.calls.append(method)
                yield self.name.encode()

        return handle


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_stub(name):
    stub = Stub(name)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((stub,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return stub, server, port


def local_config(source, stub_ports, listener_port, admin_port):
    """The same routes, with every address on loopback: Envoy's admin, its listener, and each
    cluster's one endpoint at its stub. Clusters become STATIC: no DNS is asked."""
    config = yaml.safe_load(Path(source).read_text())
    config["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": admin_port}
    listeners = config["static_resources"]["listeners"]
    if len(listeners) != 1:
        raise SystemExit(f"expected one listener in {source}, found {len(listeners)}")
    listeners[0]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": listener_port}
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    if set(clusters) != set(stub_ports):
        raise SystemExit(f"expected clusters {sorted(stub_ports)} in {source}, found {sorted(clusters)}")
    for name, cluster in clusters.items():
        cluster["type"] = "STATIC"
        endpoints = cluster["load_assignment"]["endpoints"]
        for group in endpoints:
            for lb in group["lb_endpoints"]:
                lb["endpoint"]["address"]["socket_address"] = {
                    "address": "127.0.0.1",
                    "port_value": stub_ports[name],
                }
    return config


def admin_get(admin_port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}{path}", timeout=2) as response:
        return response.read().decode()


def wait_until_healthy(admin_port, envoy, clusters, deadline):
    """Until Envoy is live and its health checks found every cluster's endpoint healthy."""
    last = ""
    while time.monotonic() < deadline:
        if envoy.poll() is not None:
            raise SystemExit(f"envoy exited with {envoy.returncode}")
        try:
            if admin_get(admin_port, "/ready").strip() == "LIVE":
                last = admin_get(admin_port, "/clusters")
                healthy = {
                    line.split("::")[0]
                    for line in last.splitlines()
                    if "::health_flags::healthy" in line
                }
                if set(clusters) <= healthy:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("envoy did not find both stubs healthy in time; /clusters said:\n" + last)


def main():
    envoy_binary, envoy_yaml = sys.argv[1], sys.argv[2]
    stubs, servers, ports = {}, [], {}
    for name in ("command-service", "query-service"):
        stub, server, port = start_stub(name)
        stubs[name], ports[name] = stub, port
        servers.append(server)
    listener_port, admin_port = free_port(), free_port()
    failures = []
    for method in proto_methods():
        if method not in OWNERS:
            failures.append(f"{method} of the proto has no owner here: add it to OWNERS and deploy/envoy.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "envoy.yaml"
        config_path.write_text(yaml.safe_dump(local_config(envoy_yaml, ports, listener_port, admin_port)))
        log = open(Path(tmp) / "envoy.log", "w")
        envoy = subprocess.Popen(
            [envoy_binary, "-c", str(config_path), "--disable-hot-restart", "--concurrency", "1", "-l", "warning"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_healthy(admin_port, envoy, ports, time.monotonic() + 30)
            with grpc.insecure_channel(f"127.0.0.1:{listener_port}") as channel:
                for method, owner in OWNERS.items():
                    path = f"/{SERVICE}/{method}"
                    answer = channel.unary_unary(path)(b"", timeout=5).decode()
                    verdict = "ok" if answer == owner else "WRONG"
                    print(f"  {path:34} -> {answer:16} {verdict}")
                    if answer != owner:
                        failures.append(f"{path} reached {answer}, owned by {owner}")

                path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
                answers = [a.decode() for a in channel.stream_stream(path)(iter([b""]), timeout=5)]
                print(f"  {'reflection (v1)':34} -> {', '.join(answers)}")
                if len(answers) != 1 or answers[0] not in OWNERS.values():
                    failures.append(f"reflection reached {answers}")

                path = f"/{SERVICE}/PurgeUsers"
                try:
                    channel.unary_unary(path)(b"", timeout=5)
                    failures.append(f"{path}, which no service has, was answered")
                except grpc.RpcError as error:
                    print(f"  {path:34} -> {error.code().name} (no route)")
                    if error.code() != grpc.StatusCode.UNIMPLEMENTED:
                        failures.append(f"{path} gave {error.code().name}, not UNIMPLEMENTED")
            for name, stub in stubs.items():
                with stub.lock:
                    asked = [bytes(r) for r in stub.health_requests]
                if not asked or not all(SERVICE.encode() in r for r in asked):
                    failures.append(f"{name}'s health checks did not name {SERVICE}: {asked[:1]}")
                if any(call.endswith("/PurgeUsers") for call in stub.calls):
                    failures.append(f"{name} received the unknown method")
        finally:
            envoy.terminate()
            try:
                envoy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                envoy.kill()
                envoy.wait()
            for server in servers:
                server.stop(0)
            log.close()
        if failures:
            print((Path(tmp) / "envoy.log").read_text()[-3000:], file=sys.stderr)
    if failures:
        for failure in failures:
            print(f"FAIL: {failure}", file=sys.stderr)
        sys.exit(1)
    print(f"  {len(OWNERS)} methods reached their owners; Envoy health-checked {SERVICE} on both")


if __name__ == "__main__":
    main()
