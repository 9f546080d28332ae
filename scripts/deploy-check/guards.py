"""The deployment traps, each as a check that fails if it comes back, plus the
Kubernetes schema validation of the rendered overlays.

  guards.py k8s OUT_DIR         rendered overlays OUT_DIR/overlays/<overlay>.yaml, and the
                                base as OUT_DIR/base.yaml:
                                schemas of the built-in kinds, then the guards; writes the
                                custom resources to OUT_DIR/<overlay>.crds.json for crds.mjs
                                and their PrometheusRule groups to OUT_DIR/<overlay>.rules.yml
  guards.py compose ENVOY_VERSION
                                docker-compose.yml and the Makefile
  guards.py self-test OUT_DIR ENVOY_VERSION
                                breaks good inputs one trap at a time: every guard must fire

Run from the repository root (scripts/deploy-check.sh does).
"""

import copy
import json
import math
import re
import sys
from pathlib import Path

import yaml

# Postgres's default max_connections, of which superuser_reserved_connections (3) are not for
# the services; the budget keeps HEADROOM more for psql, backups and exporters.
PG_MAX_CONNECTIONS = 100
PG_RESERVED = 3
HEADROOM = 10
# Connections a pod opens beside its pool: the LISTEN connection (query-service's swap
# notifications; command-service's with OUTBOX_NOTIFY=true).
LISTEN_CONNECTIONS = 1
# `query-service replay`: a pool of 2, and migrate's own connection.
REPLAY_CONNECTIONS = 3
# Kubernetes releases whose schemas the rendered objects must meet: from the first with
# everything used here generally available (the PDB's unhealthyPodEvictionPolicy, 1.31) to
# the newest that kubernetes-validate bundles.
OLDEST_KUBERNETES = (1, 31)

SECRET_SETTINGS = {"DATABASE_URL", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "PAGE_TOKEN_SECRET"}
PLACEHOLDER_CLASSES = {"", "change-me", "set-in-overlay"}
REQUIRED_ALERTS = {
    "the outbox's oldest pending age": lambda e: "outbox_oldest_pending_age_seconds" in e,
    "projector lag": lambda e: "projector_lag" in e,
    "dead letters": lambda e: "projector_events_total" in e and "dead_lettered" in e,
    "the gRPC error ratio": lambda e: "grpc_server_handled_total" in e and "grpc_code!~" in e,
}
CRD_GROUPS = {"gateway.networking.k8s.io", "monitoring.coreos.com", "postgresql.cnpg.io", "kafka.strimzi.io"}
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


# ---------------------------------------------------------------------------- helpers


def load_all(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def pod_spec(obj):
    kind = obj["kind"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind in POD_KINDS:
        return obj["spec"]["template"]["spec"]
    return None


def containers(spec):
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def name_of(obj):
    return f"{obj['kind']}/{obj['metadata'].get('name') or obj['metadata'].get('generateName', '?')}"


def of_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def selects(selector, labels):
    if not selector:
        return True
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        present = expr["key"] in labels
        value = labels.get(expr["key"])
        op = expr["operator"]
        if op == "In" and value not in expr.get("values", []):
            return False
        if op == "NotIn" and value in expr.get("values", []):
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def image_problem(image):
    """Why an image reference would not pull a pinned release, or None."""
    name, digest = (image.split("@", 1) + [None])[:2]
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    first = name.split("/", 1)[0]
    has_registry = "/" in name and ("." in first or ":" in first or first == "localhost")
    if not has_registry:
        return "has no registry, so it resolves to Docker Hub"
    if digest is None and tag is None:
        return "has no tag, so it means :latest"
    if tag == "latest":
        return "is :latest, which moves under a running Deployment"
    return None


def compose_image_problem(image):
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if "@" in image:
        return None
    if ":" not in last:
        return "has no tag, so it means :latest"
    tag = last.split(":", 1)[1]
    if tag == "latest" or tag.endswith("-latest"):
        return f"is tagged {tag}, which moves"
    return None


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def config_maps(docs):
    return {d["metadata"]["name"]: d.get("data", {}) for d in of_kind(docs, "ConfigMap")}


def settings(docs, container):
    """The settings a container gets from its ConfigMaps (envFrom) and plain env values."""
    maps = config_maps(docs)
    merged = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref:
            merged.update(maps.get(ref["name"], {}))
    for name, entry in env_of(container).items():
        if "value" in entry:
            merged[name] = entry["value"]
    return merged


def surge(deployment, replicas):
    value = deployment["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(replicas * int(value[:-1]) / 100)
    return int(value)


# ---------------------------------------------------------------------------- k8s guards


def guard_images(docs):
    failures = []
    for obj in docs:
        spec = pod_spec(obj)
        if spec is None:
            continue
        for c in containers(spec):
            problem = image_problem(c.get("image", ""))
            if problem:
                failures.append(f"{name_of(obj)} container {c['name']}: image {c.get('image')!r} {problem}")
    return failures


def guard_replicas(docs):
    failures = []
    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")}
    for d in of_kind(docs, "Deployment"):
        name = d["metadata"]["name"]
        if name not in scaled:
            failures.append(f"Deployment/{name} has no HorizontalPodAutoscaler")
        elif "replicas" in d["spec"]:
            failures.append(
                f"Deployment/{name} sets replicas beside its HPA: every apply would reset the scaled count"
            )
    return failures


def guard_migrations(docs):
    failures = []
    for d in of_kind(docs, "Deployment"):
        spec = pod_spec(d)
        main = spec["containers"][0]
        migrate = [c for c in spec.get("initContainers", []) if c.get("args") == ["migrate"]]
        if not migrate:
            failures.append(f"Deployment/{d['metadata']['name']} has no `migrate` initContainer")
        elif migrate[0].get("image") != main.get("image"):
            failures.append(
                f"Deployment/{d['metadata']['name']}: the migrate initContainer runs {migrate[0].get('image')}, "
                f"the server {main.get('image')}"
            )
    for job in of_kind(docs, "Job"):
        if job["metadata"].get("name"):
            failures.append(
                f"Job/{job['metadata']['name']} has a fixed name: the next release's apply fails on its "
                "immutable pod template (use a suspended CronJob as a template, or generateName)"
            )
    return failures


def guard_replay_template(docs):
    images = {pod_spec(d)["containers"][0]["name"]: pod_spec(d)["containers"][0]["image"] for d in of_kind(docs, "Deployment")}
    replays = [
        c
        for c in of_kind(docs, "CronJob")
        if any(x.get("args") == ["replay"] for x in pod_spec(c)["containers"])
    ]
    if not replays:
        return ["no CronJob template runs `query-service replay`"]
    failures = []
    for cron in replays:
        if cron["spec"].get("suspend") is not True:
            failures.append(f"{name_of(cron)} is not suspended: the replay template would run on its schedule")
        image = pod_spec(cron)["containers"][0]["image"]
        if image != images.get("query-service"):
            failures.append(f"{name_of(cron)} runs {image}, the query-service Deployment {images.get('query-service')}")
    return failures


def guard_gateway(docs):
    failures = []
    gateways = of_kind(docs, "Gateway")
    if not gateways:
        failures.append("no Gateway")
    for g in gateways:
        cls = g["spec"].get("gatewayClassName", "")
        if cls in PLACEHOLDER_CLASSES or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", cls):
            failures.append(f"{name_of(g)}: gatewayClassName {cls!r} is a placeholder; the overlay must set a class")
    return failures


# The methods the router must send to their owners.
PROTO = Path("shared-proto/proto/user/v1/user_service.proto")
SERVICE = "user.v1.UserService"


def proto_methods():
    return re.findall(r"^\s*rpc (\w+)\(", PROTO.read_text(), re.MULTILINE)


def guard_routes(docs):
    routed = {
        match["method"].get("method")
        for route in of_kind(docs, "GRPCRoute")
        for rule in route["spec"].get("rules", [])
        for match in rule.get("matches", [])
        if match.get("method", {}).get("service") == SERVICE
    }
    return [f"no GRPCRoute rule sends {method} to its owner" for method in proto_methods() if method not in routed]


def dashboard_exprs(dashboard):
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr":
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard)
    return found


def guard_dashboard(docs):
    maps = [d for d in of_kind(docs, "ConfigMap") if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    if not maps:
        return ["no ConfigMap labelled grafana_dashboard for Grafana's sidecar"]
    failures = []
    for cm in maps:
        for key, text in cm.get("data", {}).items():
            for expr in dashboard_exprs(json.loads(text)):
                if 'job=~"command-service|query-service"' not in expr or "$namespace" not in expr:
                    failures.append(f"{name_of(cm)}/{key}: a panel not scoped to this service's jobs and namespace: {expr}")
    return failures


def guard_replication(docs, base_docs):
    failures = []
    for name, data in config_maps(base_docs).items():
        if "KAFKA_TOPIC_REPLICATION" in data:
            failures.append(
                f"k8s/base ConfigMap {name} sets KAFKA_TOPIC_REPLICATION={data['KAFKA_TOPIC_REPLICATION']}: "
                "leave it to the service (broker count, capped at 3) or pin it in an overlay"
            )
    for name, data in config_maps(docs).items():
        if "KAFKA_TOPIC_REPLICATION" in data:
            wanted = int(data["KAFKA_TOPIC_REPLICATION"])
            brokers = [b for b in data.get("KAFKA_BROKERS", "").split(",") if b.strip()]
            if wanted > len(brokers):
                failures.append(
                    f"ConfigMap {name} pins KAFKA_TOPIC_REPLICATION={wanted} but KAFKA_BROKERS lists "
                    f"{len(brokers)} broker(s): topic creation would fail"
                )
    return failures


def connection_budget(docs):
    """(lines, total, failures): the most Postgres connections the overlay's pods can open."""
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(docs, "HorizontalPodAutoscaler")}
    lines, total, failures = [], 0, []
    for d in of_kind(docs, "Deployment"):
        name = d["metadata"]["name"]
        main = pod_spec(d)["containers"][0]
        pool = settings(docs, main).get("DATABASE_POOL_SIZE")
        if pool is None:
            failures.append(f"Deployment/{name} does not set DATABASE_POOL_SIZE: the built-in default is sized for one machine, not for HPA max replicas")
            continue
        hpa = hpas.get(name)
        most = hpa["spec"]["maxReplicas"] if hpa else d["spec"].get("replicas", 1)
        pods = most + surge(d, most)
        each = int(pool) + LISTEN_CONNECTIONS
        lines.append(f"{name}: ({most} + {pods - most}) pods x ({pool} + {LISTEN_CONNECTIONS}) = {pods * each}")
        total += pods * each
    for cron in of_kind(docs, "CronJob"):
        lines.append(f"{cron['metadata']['name']}: 1 x {REPLAY_CONNECTIONS} = {REPLAY_CONNECTIONS}")
        total += REPLAY_CONNECTIONS
    usable = PG_MAX_CONNECTIONS - PG_RESERVED
    if total > usable - HEADROOM:
        failures.append(
            f"Postgres connections: at most {total} ({'; '.join(lines)}) against max_connections "
            f"{PG_MAX_CONNECTIONS} - {PG_RESERVED} reserved - {HEADROOM} headroom = {usable - HEADROOM}"
        )
    return lines, total, failures


def duration_seconds(text):
    """A duration as the services write it (250ms, 20s, 5m, 1h)."""
    text = str(text).strip()
    for unit, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * factor
    raise ValueError(f"not a duration: {text}")


# What a service still does after SHUTDOWN_GRACE, in seconds, as its code bounds it: the
# relay's final flush (FINAL_FLUSH in command-service/src/outbox/relay/drain.rs) and its last write
# of the outbox (DATABASE_STATEMENT_TIMEOUT + CALL_MARGIN, shared/src/db_pool.rs), and for
# both the trace exporter's flush (the OpenTelemetry SDK's 5 s shutdown bound).
AFTER_GRACE = {"command-service": (5, True), "query-service": (0, False)}
CALL_MARGIN = 2
TRACE_FLUSH = 5


def guard_termination_budget(docs):
    """terminationGracePeriodSeconds holds preStop + SHUTDOWN_GRACE + the drain after it."""
    failures = []
    for d in of_kind(docs, "Deployment"):
        name = d["metadata"]["name"]
        spec = pod_spec(d)
        main = spec["containers"][0]
        values = settings(docs, main)
        command = main.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pre_stop = int(command[1]) if len(command) == 2 and command[0] == "sleep" else 0
        grace = duration_seconds(values.get("SHUTDOWN_GRACE", "20s"))
        flush, writes = AFTER_GRACE.get(name, (0, False))
        statement = duration_seconds(values.get("DATABASE_STATEMENT_TIMEOUT", "10s"))
        after = flush + (statement + CALL_MARGIN if writes else 0) + TRACE_FLUSH
        needed = pre_stop + grace + after
        have = spec.get("terminationGracePeriodSeconds", 30)
        if have < needed:
            failures.append(
                f"Deployment/{name}: terminationGracePeriodSeconds {have} < preStop {pre_stop} + "
                f"SHUTDOWN_GRACE {grace:g} + {after:g} after it = {needed:g}: SIGKILL would cut the drain"
            )
    return failures


def guard_operations(docs):
    failures = []
    accounts = {a["metadata"]["name"] for a in of_kind(docs, "ServiceAccount")}
    pdbs = of_kind(docs, "PodDisruptionBudget")
    policies = of_kind(docs, "NetworkPolicy")
    services = of_kind(docs, "Service")
    monitors = of_kind(docs, "ServiceMonitor") + of_kind(docs, "PodMonitor")
    for d in of_kind(docs, "Deployment"):
        name = d["metadata"]["name"]
        spec = pod_spec(d)
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        account = spec.get("serviceAccountName", "default")
        if account == "default" or account not in accounts:
            failures.append(f"Deployment/{name} runs as ServiceAccount {account!r}, which this overlay does not define")
        mine = [p for p in pdbs if selects(p["spec"].get("selector"), labels)]
        if not mine:
            failures.append(f"Deployment/{name} has no PodDisruptionBudget")
        for p in mine:
            if p["spec"].get("unhealthyPodEvictionPolicy") != "AlwaysAllow":
                failures.append(
                    f"{name_of(p)}: unhealthyPodEvictionPolicy is not AlwaysAllow, so an unready pod blocks node drains"
                )
        types = {t for p in policies if selects(p["spec"].get("podSelector"), labels) for t in p["spec"].get("policyTypes", [])}
        if not {"Ingress", "Egress"} <= types:
            failures.append(f"Deployment/{name}: no NetworkPolicy limits its {' and '.join(sorted({'Ingress', 'Egress'} - types))}")
        mine_svc = [s for s in services if selects({"matchLabels": s["spec"].get("selector", {})}, labels)]
        scraped = False
        for s in mine_svc:
            ports = {p.get("name") for p in s["spec"].get("ports", [])}
            for m in of_kind(monitors, "ServiceMonitor"):
                if selects(m["spec"].get("selector"), s["metadata"].get("labels", {})) and any(
                    e.get("port") in ports and e.get("path", "/metrics") == "/metrics" for e in m["spec"].get("endpoints", [])
                ):
                    scraped = True
        for m in of_kind(monitors, "PodMonitor"):
            if selects(m["spec"].get("selector"), labels):
                scraped = True
        if not scraped:
            failures.append(f"Deployment/{name}: no ServiceMonitor or PodMonitor scrapes its /metrics")
        for c in spec["containers"]:
            ready = c.get("readinessProbe", {}).get("httpGet", {}).get("path")
            live = c.get("livenessProbe", {}).get("httpGet", {}).get("path")
            if ready != "/health-check/readiness":
                failures.append(f"Deployment/{name}: readinessProbe asks {ready!r}, not /health-check/readiness")
            if live != "/health-check/liveness":
                failures.append(f"Deployment/{name}: livenessProbe asks {live!r}, not /health-check/liveness")
    exprs = [
        r.get("expr", "")
        for rule in of_kind(docs, "PrometheusRule")
        for g in rule["spec"].get("groups", [])
        for r in g.get("rules", [])
        if "alert" in r
    ]
    if not of_kind(docs, "PrometheusRule"):
        failures.append("no PrometheusRule")
    for what, covers in REQUIRED_ALERTS.items():
        if not any(covers(e) for e in exprs):
            failures.append(f"no alert on {what} (PrometheusRule)")
    return failures


def guard_secrets(docs):
    failures = []
    url_with_password = re.compile(r"postgres(ql)?://[^/@\s:]+:[^/@\s]+@")
    for name, data in config_maps(docs).items():
        for key, value in data.items():
            if key in SECRET_SETTINGS:
                failures.append(f"ConfigMap {name} holds {key}: it belongs in a Secret")
            elif url_with_password.search(str(value)):
                failures.append(f"ConfigMap {name} holds a password in {key}: it belongs in a Secret")
    for obj in docs:
        spec = pod_spec(obj)
        if spec is None:
            continue
        for c in containers(spec):
            for key, entry in env_of(c).items():
                if key not in SECRET_SETTINGS or "secretKeyRef" in entry.get("valueFrom", {}):
                    continue
                if key == "DATABASE_URL" and composed_from_secrets(c, entry):
                    continue
                failures.append(f"{name_of(obj)} container {c['name']}: {key} is not from a Secret")
    return failures


def composed_from_secrets(container, entry):
    """A DATABASE_URL written as postgres://$(USER):$(PASSWORD)@host/db, both variables listed
    before it and taken from Secrets (Kubernetes expands only variables defined earlier)."""
    found = re.fullmatch(r"postgres(?:ql)?://\$\((\w+)\):\$\((\w+)\)@[^@\s]+", entry.get("value", ""))
    if not found:
        return False
    earlier = {}
    for e in container.get("env", []):
        if e is entry:
            break
        earlier[e["name"]] = e
    return all("secretKeyRef" in earlier.get(name, {}).get("valueFrom", {}) for name in found.groups())


# ------------------------------------------------------ k8s/components/dependencies guards

TOPICS_RS = Path("shared-proto/src/topics.rs")
EVENT_TOPIC_CONSTS = ("USER_CREATED", "USER_UPDATED", "USER_DELETED")


def topic_names():
    """(event topics, dead-letter topic) as shared-proto names them."""
    consts = dict(re.findall(r'pub const (\w+): &str = "([^"]+)";', TOPICS_RS.read_text()))
    return [consts[c] for c in EVENT_TOPIC_CONSTS], consts["DEAD_LETTER"]


def server_settings(docs):
    """Each server container's settings, by Deployment name."""
    return {
        d["metadata"]["name"]: settings(docs, c)
        for d in of_kind(docs, "Deployment")
        for c in containers(pod_spec(d))
        if c["name"] == d["metadata"]["name"]
    }


def guard_kafka_dependency(docs):
    """With a Strimzi Kafka in the overlay: the services reach its bootstrap Service, create no
    topics, and every topic they use is a KafkaTopic with the settings they check at start."""
    clusters = of_kind(docs, "Kafka")
    if not clusters and not of_kind(docs, "KafkaTopic"):
        return []
    failures = []
    by_cluster = {d["metadata"]["name"]: d for d in clusters}
    brokers = {}
    for pool in of_kind(docs, "KafkaNodePool"):
        if "broker" in pool["spec"].get("roles", []):
            owner = pool["metadata"].get("labels", {}).get("strimzi.io/cluster")
            brokers[owner] = brokers.get(owner, 0) + pool["spec"].get("replicas", 0)
    topics = {
        t["spec"].get("topicName", t["metadata"]["name"]): t for t in of_kind(docs, "KafkaTopic")
    }
    events, dead_letter = topic_names()
    served = {
        f"{name}-kafka-bootstrap:{listener['port']}": listener
        for name, kafka in by_cluster.items()
        for listener in kafka["spec"]["kafka"].get("listeners", [])
        if listener.get("type") == "internal"
    }
    for service, conf in server_settings(docs).items():
        if conf.get("KAFKA_MANAGE_TOPICS", "true").lower() != "false":
            failures.append(f"{service}: KAFKA_MANAGE_TOPICS must be false when Strimzi owns the topics")
        bootstrap = [b.strip() for b in conf.get("KAFKA_BROKERS", "").split(",") if b.strip()]
        if not bootstrap or any(b not in served for b in bootstrap):
            failures.append(
                f"{service}: KAFKA_BROKERS={conf.get('KAFKA_BROKERS')} is not a bootstrap Service of the "
                f"overlay's Kafka ({', '.join(sorted(served)) or 'none'})"
            )
        else:
            tls = any(served[b].get("tls") for b in bootstrap)
            protocol = conf.get("KAFKA_SECURITY_PROTOCOL", "plaintext")
            if tls != protocol.endswith("ssl"):
                failures.append(f"{service}: KAFKA_SECURITY_PROTOCOL={protocol} on a listener with tls: {tls}")
        prefix = conf.get("KAFKA_TOPIC_PREFIX", "")
        partitions = int(conf.get("KAFKA_TOPIC_PARTITIONS", "12"))
        compact = conf.get("KAFKA_TOPIC_RETENTION", "forever") == "compact"
        wanted = [(f"{prefix}{t}", compact) for t in events]
        if service == "query-service":
            wanted.append((f"{prefix}{dead_letter}", False))
        for name, compacted in wanted:
            topic = topics.get(name)
            if topic is None:
                failures.append(f"{service} uses topic {name}, and no KafkaTopic declares it")
                continue
            spec = topic["spec"]
            config = {k: str(v) for k, v in spec.get("config", {}).items()}
            owner = topic["metadata"].get("labels", {}).get("strimzi.io/cluster")
            if owner not in by_cluster:
                failures.append(f"KafkaTopic {name}: strimzi.io/cluster={owner} names no Kafka of the overlay")
            if spec.get("partitions") != partitions:
                failures.append(
                    f"KafkaTopic {name} has {spec.get('partitions')} partitions; {service} expects "
                    f"KAFKA_TOPIC_PARTITIONS={partitions} and refuses to start otherwise"
                )
            replicas = spec.get("replicas", 0)
            if replicas > brokers.get(owner, 0) or replicas < 1:
                failures.append(f"KafkaTopic {name}: {replicas} replicas on {brokers.get(owner, 0)} broker(s)")
            policy = "compact" if compacted else "delete"
            if config.get("cleanup.policy") != policy:
                failures.append(f"KafkaTopic {name}: cleanup.policy {config.get('cleanup.policy')}, {service} expects {policy}")
            if not compacted and (config.get("retention.ms") != "-1" or config.get("retention.bytes") != "-1"):
                failures.append(
                    f"KafkaTopic {name} does not keep every record (retention.ms and retention.bytes -1): "
                    "a replay would miss the oldest events"
                )
            if config.get("min.insync.replicas") != str(min(replicas, 2)):
                failures.append(
                    f"KafkaTopic {name}: min.insync.replicas {config.get('min.insync.replicas')}, where the "
                    f"services set min(replicas, 2) = {min(replicas, 2)} so that acks=all means two copies"
                )
    return failures


def guard_postgres_dependency(docs):
    """With CloudNativePG Clusters in the overlay: each service migrates as its database's owner
    (the Cluster's `-app` Secret) and serves as a managed role that owns nothing, over
    verify-full TLS against the Cluster's CA."""
    clusters = {d["metadata"]["name"]: d for d in of_kind(docs, "Cluster") if d["apiVersion"].startswith("postgresql.cnpg.io/")}
    if not clusters:
        return []
    failures = []
    url = re.compile(r"postgres(?:ql)?://\$\((\w+)\):\$\((\w+)\)@([\w.-]+)-rw(?:\.[\w.-]+)?:5432/(\w+)\?(.*)")

    def check(obj, container, server, volumes):
        env = env_of(container)
        where = f"{name_of(obj)} container {container['name']}"
        found = url.fullmatch(env.get("DATABASE_URL", {}).get("value", ""))
        if not found:
            failures.append(f"{where}: DATABASE_URL is not postgres://$(USER):$(PASSWORD)@<cluster>-rw:5432/<db>?…")
            return
        user_var, _, cluster_name, database, query = found.groups()
        cluster = clusters.get(cluster_name)
        if cluster is None:
            failures.append(f"{where}: DATABASE_URL names {cluster_name}-rw, and no Cluster {cluster_name} exists")
            return
        spec = cluster["spec"]
        initdb = spec.get("bootstrap", {}).get("initdb", {})
        if database != initdb.get("database"):
            failures.append(f"{where}: database {database}, where Cluster {cluster_name} makes {initdb.get('database')}")
        if "sslmode=verify-full" not in query.split("&"):
            failures.append(f"{where}: DATABASE_URL without sslmode=verify-full")
        secret = env[user_var]["valueFrom"]["secretKeyRef"]["name"]
        roles = {r["name"]: r for r in spec.get("managed", {}).get("roles", [])}
        if server:
            role = next((r for r in roles.values() if r.get("passwordSecret", {}).get("name") == secret), None)
            if role is None:
                failures.append(f"{where}: connects with Secret {secret}, which is no managed role's passwordSecret")
            elif role.get("superuser") or role.get("createdb") or role["name"] == initdb.get("owner"):
                failures.append(f"{where}: role {role['name']} could change the schema")
        else:
            if secret != f"{cluster_name}-app":
                failures.append(f"{where}: migrates with Secret {secret}, not the owner's {cluster_name}-app")
            grant = env.get("MIGRATION_GRANT_TO", {}).get("value")
            if grant not in roles:
                failures.append(f"{where}: MIGRATION_GRANT_TO={grant} is no managed role of Cluster {cluster_name}")
        ca = volumes.get("tls-ca", {}).get("secret", {})
        if ca.get("secretName") != f"{cluster_name}-ca" or [i["key"] for i in ca.get("items", [])] != ["ca.crt"]:
            failures.append(f"{where}: tls-ca is not ca.crt alone of Secret {cluster_name}-ca")

    for obj in docs:
        spec = pod_spec(obj)
        if spec is None:
            continue
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec.get("initContainers", []):
            if c["name"] == "migrate":
                check(obj, c, False, volumes)
        for c in spec.get("containers", []):
            if obj["kind"] == "CronJob":
                check(obj, c, False, volumes)
            elif c["name"] == obj["metadata"]["name"]:
                check(obj, c, True, volumes)
    return failures


def guard_rules_parity(docs, alerts_file):
    expected = yaml.safe_load(Path(alerts_file).read_text())["groups"]
    failures = []
    for rule in of_kind(docs, "PrometheusRule"):
        if rule["spec"].get("groups") != expected:
            failures.append(f"{name_of(rule)} differs from {alerts_file}: keep the two equal")
    return failures


def k8s_guards(docs, base_docs, alerts_file):
    """Every k8s guard: (name, failures) pairs."""
    return [
        ("images have a registry and a release tag", guard_images(docs)),
        ("no replicas beside an HPA", guard_replicas(docs)),
        ("migrations in an initContainer; no Job with a fixed name", guard_migrations(docs)),
        ("replay template: a suspended CronJob on the release's image", guard_replay_template(docs)),
        ("gateway class set by the overlay", guard_gateway(docs)),
        ("the GRPCRoute routes every method of the proto", guard_routes(docs)),
        ("a dashboard ConfigMap, every panel scoped to this service", guard_dashboard(docs)),
        ("topic replication fits the brokers", guard_replication(docs, base_docs)),
        ("Postgres connections fit max_connections", connection_budget(docs)[2]),
        ("ServiceAccount, PDB, NetworkPolicy, ServiceMonitor, alerts, probes", guard_operations(docs)),
        ("credentials only from Secrets", guard_secrets(docs)),
        ("PrometheusRule equals deploy/prometheus/alerts.yml", guard_rules_parity(docs, alerts_file)),
        ("the termination grace holds the whole drain", guard_termination_budget(docs)),
        ("Strimzi's Kafka: its bootstrap, every topic declared as the services expect", guard_kafka_dependency(docs)),
        ("CloudNativePG: owners migrate, roles that own nothing serve, over verify-full", guard_postgres_dependency(docs)),
    ]


# ---------------------------------------------------------------------------- k8s schemas


def kubernetes_versions():
    from kubernetes_validate.utils import all_versions

    versions = []
    for v in sorted(set(all_versions()), key=lambda v: tuple(int(x) for x in v.split("."))):
        major, minor = (int(x) for x in v.split(".")[:2])
        if (major, minor) >= OLDEST_KUBERNETES:
            versions.append(v)
    return versions


def validate_builtin(docs, versions):
    """Strict schema validation (unknown fields fail) of the built-in kinds, against each
    version; returns (failures, custom resources left for crds.mjs)."""
    import kubernetes_validate

    failures, custom = [], []
    for obj in docs:
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if group in CRD_GROUPS:
            custom.append(obj)
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                failures.append(f"{name_of(obj)} ({obj['apiVersion']}): no schema for it in Kubernetes {version}")
                break
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(p) for p in error.path)
                failures.append(f"{name_of(obj)} against Kubernetes {version}: {path}: {error.message}")
                break
    return failures, custom


# ---------------------------------------------------------------------------- compose guards


def published(port):
    """(host_ip, host_port) of a compose port entry; host_ip None when it binds every address."""
    if isinstance(port, dict):
        return port.get("host_ip"), str(port.get("published", "")) or None
    text = str(port).split("/")[0]
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        return parts[0].strip("[]"), parts[1]
    if len(parts) == 2:
        return None, parts[0]
    return None, None


def compose_guards(compose, makefile, envoy_version):
    services = compose.get("services", {})
    images, ports, health, otel = [], [], [], []
    for name, svc in services.items():
        image = svc.get("image")
        if not image:
            images.append(f"{name} has no image (and so no tag)")
        else:
            problem = compose_image_problem(image)
            if problem:
                images.append(f"{name}: image {image!r} {problem}")
        for port in svc.get("ports", []):
            host_ip, host_port = published(port)
            if host_ip not in ("127.0.0.1", "::1", "localhost"):
                ports.append(f"{name} publishes {port!r} on every interface, not on 127.0.0.1")
            if host_port == "5432":
                ports.append(f"{name} publishes host port 5432, where the local Postgres runs")

    envoy = [s for s in services.values() if str(s.get("image", "")).startswith("envoyproxy/envoy")]
    match = re.match(r"v?(\d+)\.(\d+)", envoy[0]["image"].split(":", 1)[1]) if envoy and ":" in envoy[0]["image"] else None
    wanted = ".".join(envoy_version.split(".")[:2])
    if not envoy:
        images.append("no Envoy service")
    elif not match or f"{match.group(1)}.{match.group(2)}" != wanted:
        images.append(
            f"Envoy runs {envoy[0]['image']}, but deploy/envoy.yaml is validated with Envoy {envoy_version}: "
            "keep them on one supported release"
        )

    for name in ("command-service", "query-service"):
        svc = services.get(name)
        if svc is None:
            health.append(f"no {name} service")
            continue
        check = svc.get("healthcheck", {})
        if not check or check.get("disable") or check.get("test") in (None, ["NONE"], "NONE"):
            health.append(f"{name} has no healthcheck")
        endpoint = (svc.get("environment") or {}).get("OTEL_EXPORTER_OTLP_ENDPOINT")
        target = re.fullmatch(r"http://([a-z0-9-]+):4317/?", str(endpoint or ""))
        if not target:
            otel.append(f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT is {endpoint!r}, not http://<collector>:4317 (OTLP/gRPC)")
        elif target.group(1) not in services:
            otel.append(f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT names {target.group(1)}, which compose does not run")
    for e in envoy:
        depends = e.get("depends_on", {})
        for name in ("command-service", "query-service"):
            condition = depends.get(name, {}).get("condition") if isinstance(depends, dict) else None
            if condition != "service_healthy":
                health.append(f"Envoy does not wait for {name} to be healthy (depends_on condition service_healthy)")

    builds = [line for line in makefile.splitlines() if re.search(r"\bdocker build\b", line)]
    buildkit = [f"Makefile runs `{line.strip()}` without DOCKER_BUILDKIT=1" for line in builds if "DOCKER_BUILDKIT=1" not in line]
    if not builds:
        buildkit.append("the Makefile has no docker build")
    return [
        ("every image pinned to a tag", images),
        ("ports published on 127.0.0.1 only, Postgres not on 5432", ports),
        ("a healthcheck per service; Envoy waits for them", health),
        ("traces exported over OTLP/gRPC to a collector in compose", otel),
        ("make docker-build uses BuildKit", buildkit),
    ]


# ---------------------------------------------------------------------------- runners


def report(title, results):
    print(f"-- {title}")
    failed = 0
    for name, failures in results:
        print(f"  {'ok  ' if not failures else 'FAIL'} {name}")
        for f in failures:
            print(f"         {f}")
        failed += bool(failures)
    return failed


def run_k8s(out):
    out = Path(out)
    base_docs = load_all(out / "base.yaml")
    versions = kubernetes_versions()
    failed = 0
    overlays = sorted((out / "overlays").glob("*.yaml"))
    for path in overlays:
        docs = load_all(path)
        schema_failures, custom = validate_builtin(docs, versions)
        (out / f"{path.stem}.crds.json").write_text(json.dumps(custom))
        groups = [g for r in of_kind(custom, "PrometheusRule") for g in r["spec"].get("groups", [])]
        (out / f"{path.stem}.rules.yml").write_text(yaml.safe_dump({"groups": groups}))
        kinds = sorted({d["kind"] for d in docs if d not in custom})
        results = [(f"{len(docs) - len(custom)} built-in objects ({', '.join(kinds)}) meet the schemas of "
                    f"Kubernetes {versions[0]} to {versions[-1]}, unknown fields refused", schema_failures)]
        results += k8s_guards(docs, base_docs, "deploy/prometheus/alerts.yml")
        failed += report(f"overlay {path.stem}", results)
        lines, total, _ = connection_budget(docs)
        usable = PG_MAX_CONNECTIONS - PG_RESERVED
        print(f"  Postgres budget: {'; '.join(lines)}; total {total} of {usable} (headroom {usable - total})")
    if not overlays:
        print("no rendered overlays")
        return 1
    return failed


def run_compose(envoy_version):
    compose = yaml.safe_load(Path("docker-compose.yml").read_text())
    makefile = Path("Makefile").read_text()
    return report("docker-compose.yml and Makefile", compose_guards(compose, makefile, envoy_version))


def self_test(out, envoy_version):
    """Each trap, put back into a good input, must make its guard fail."""
    out = Path(out)
    good = load_all(out / "overlays" / "prod.yaml")
    base = load_all(out / "base.yaml")
    alerts = "deploy/prometheus/alerts.yml"
    compose = yaml.safe_load(Path("docker-compose.yml").read_text())
    makefile = Path("Makefile").read_text()

    def deployment(docs, name="command-service"):
        return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)

    def cm(docs, prefix):
        return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith(prefix))

    def drop(kind, match=lambda d: True):
        return lambda docs: docs.__setitem__(slice(None), [d for d in docs if not (d["kind"] == kind and match(d))])

    def set_image(value):
        return lambda docs: pod_spec(deployment(docs))["containers"][0].__setitem__("image", value)

    k8s_cases = {
        "an image on :latest": (set_image("registry.example.com/users/command-service:latest"), "latest"),
        "an image without a registry": (set_image("users/command-service:0.1.0"), "no registry"),
        "an image without a tag": (set_image("registry.example.com/users/command-service"), "no tag"),
        "replicas beside the HPA": (lambda d: deployment(d)["spec"].__setitem__("replicas", 2), "sets replicas"),
        "a migrate Job instead of the initContainer": (
            lambda d: (
                pod_spec(deployment(d)).pop("initContainers"),
                d.append({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "command-service-migrate"},
                          "spec": {"template": {"spec": {"containers": []}}}}),
            ),
            "fixed name",
        ),
        "a method the GRPCRoute does not route": (
            lambda d: [
                rule.__setitem__("matches", [m for m in rule["matches"] if m["method"]["method"] != "GetUserByEmail"])
                for route in d
                if route["kind"] == "GRPCRoute"
                for rule in route["spec"]["rules"]
            ],
            "GetUserByEmail",
        ),
        "an unscoped dashboard panel": (
            lambda d: [
                cm["data"].__setitem__(key, text.replace('job=~\\"command-service|query-service\\",', "", 1))
                for cm in d
                if cm["kind"] == "ConfigMap" and cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
                for key, text in list(cm["data"].items())
            ],
            "not scoped",
        ),
        "no dashboard ConfigMap": (
            drop("ConfigMap", lambda d: d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"),
            "grafana_dashboard",
        ),
        "gatewayClassName change-me": (
            lambda d: next(x for x in d if x["kind"] == "Gateway")["spec"].__setitem__("gatewayClassName", "change-me"),
            "placeholder",
        ),
        "replication factor 3 in the base": (
            lambda d: cm(base, "command-service-config")["data"].__setitem__("KAFKA_TOPIC_REPLICATION", "3"),
            "KAFKA_TOPIC_REPLICATION",
        ),
        "32 connections per pod": (
            lambda d: cm(d, "query-service-config")["data"].__setitem__("DATABASE_POOL_SIZE", "32"),
            "Postgres connections",
        ),
        "a PDB that blocks drains": (
            lambda d: next(x for x in d if x["kind"] == "PodDisruptionBudget")["spec"].pop("unhealthyPodEvictionPolicy"),
            "unhealthyPodEvictionPolicy",
        ),
        "no NetworkPolicy": (drop("NetworkPolicy"), "NetworkPolicy"),
        "no ServiceAccount": (drop("ServiceAccount"), "ServiceAccount"),
        "no ServiceMonitor": (drop("ServiceMonitor"), "ServiceMonitor"),
        "no replay template": (drop("CronJob"), "replay"),
        "no dead-letter alert": (
            lambda d: [
                g["rules"].__setitem__(slice(None), [r for r in g["rules"] if "dead_lettered" not in r.get("expr", "")])
                for r in d if r["kind"] == "PrometheusRule" for g in r["spec"]["groups"]
            ],
            "dead letters",
        ),
        "alerts that drifted from alerts.yml": (
            lambda d: next(x for x in d if x["kind"] == "PrometheusRule")["spec"]["groups"][0]["rules"][0].__setitem__("for", "1h"),
            "differs",
        ),
        "DATABASE_URL in a ConfigMap": (
            lambda d: cm(d, "command-service-config")["data"].__setitem__("DATABASE_URL", "postgres://u:p@db/users_write"),
            "Secret",
        ),
        "a SASL password as a plain value": (
            lambda d: env_of(pod_spec(deployment(d))["containers"][0])["KAFKA_SASL_PASSWORD"].update(
                {"value": "hunter2", "valueFrom": {}}
            ),
            "not from a Secret",
        ),
        "a termination grace of 30 s": (
            lambda d: pod_spec(deployment(d)).__setitem__("terminationGracePeriodSeconds", 30),
            "terminationGracePeriodSeconds",
        ),
        "readiness on another path": (
            lambda d: pod_spec(deployment(d))["containers"][0]["readinessProbe"]["httpGet"].__setitem__("path", "/ready"),
            "readinessProbe",
        ),
    }
    failed = 0
    print("-- each k8s trap, put back, is caught")
    for what, (mutate, expected) in k8s_cases.items():
        docs = copy.deepcopy(good)
        saved_base = copy.deepcopy(base)
        mutate(docs)
        results = k8s_guards(docs, base, alerts)
        base[:] = saved_base
        caught = [f for _, fs in results for f in fs if expected in f]
        print(f"  {'ok  ' if caught else 'FAIL'} {what}: {caught[0] if caught else 'not caught'}")
        failed += not caught
    clean = [f for _, fs in k8s_guards(good, base, alerts) for f in fs]
    if clean:
        print(f"  FAIL the good overlay itself fails: {clean}")
        failed += 1

    local = load_all(out / "overlays" / "local.yaml")

    def topic(docs, name):
        return next(t for t in of_kind(docs, "KafkaTopic") if t["spec"]["topicName"] == name)

    def container_env(docs, kind, name, container):
        obj = next(d for d in of_kind(docs, kind) if d["metadata"]["name"] == name)
        spec = pod_spec(obj)
        return env_of(next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == container))

    dependency_cases = {
        "the services creating topics beside Strimzi": (
            lambda d: cm(d, "query-service-config")["data"].pop("KAFKA_MANAGE_TOPICS"),
            "KAFKA_MANAGE_TOPICS",
        ),
        "the dev overlay's broker address": (
            lambda d: cm(d, "command-service-config")["data"].__setitem__("KAFKA_BROKERS", "kafka:9092"),
            "bootstrap Service",
        ),
        "no KafkaTopic for the dead letters": (drop("KafkaTopic", lambda t: t["spec"]["topicName"].endswith("dlq_v1")), "no KafkaTopic"),
        "a topic of 6 partitions": (lambda d: topic(d, "user-updated_v1")["spec"].__setitem__("partitions", 6), "partitions"),
        "a topic with the broker's 7-day retention": (
            lambda d: topic(d, "user-deleted_v1")["spec"]["config"].pop("retention.ms"),
            "every record",
        ),
        "the server connecting as the owner": (
            lambda d: container_env(d, "Deployment", "command-service", "command-service")["DATABASE_USER"]["valueFrom"][
                "secretKeyRef"
            ].__setitem__("name", "users-write-app"),
            "no managed role",
        ),
        "the replay without TLS checks": (
            lambda d: container_env(d, "CronJob", "query-service-replay", "replay")["DATABASE_URL"].__setitem__(
                "value", "postgres://$(DATABASE_USER):$(DATABASE_PASSWORD)@users-read-rw:5432/users_read?sslmode=require"
            ),
            "verify-full",
        ),
        "a password written into the URL": (
            lambda d: container_env(d, "Deployment", "query-service", "migrate")["DATABASE_URL"].__setitem__(
                "value", "postgres://$(DATABASE_USER):hunter2@users-read-rw:5432/users_read?sslmode=verify-full"
            ),
            "not from a Secret",
        ),
    }
    print("-- each trap of k8s/components/dependencies (overlay local), put back, is caught")
    for what, (mutate, expected) in dependency_cases.items():
        docs = copy.deepcopy(local)
        mutate(docs)
        caught = [f for _, fs in k8s_guards(docs, base, alerts) for f in fs if expected in f]
        print(f"  {'ok  ' if caught else 'FAIL'} {what}: {caught[0] if caught else 'not caught'}")
        failed += not caught
    clean = [f for _, fs in k8s_guards(local, base, alerts) for f in fs]
    if clean:
        print(f"  FAIL the local overlay itself fails: {clean}")
        failed += 1

    def service(c, name):
        return c["services"][name]

    compose_cases = {
        "Postgres on 0.0.0.0:5432": (lambda c: service(c, "postgres").__setitem__("ports", ["5432:5432"]), "5432"),
        "Envoy's admin on every interface": (
            lambda c: service(c, "envoy").__setitem__("ports", ["127.0.0.1:8080:8080", "0.0.0.0:9901:9901"]),
            "every interface",
        ),
        "Prometheus without a tag": (lambda c: service(c, "prometheus").__setitem__("image", "prom/prometheus"), "no tag"),
        "Envoy v1.31": (lambda c: service(c, "envoy").__setitem__("image", "envoyproxy/envoy:v1.31-latest"), "moves"),
        "Envoy another release than the validated one": (
            lambda c: service(c, "envoy").__setitem__("image", "envoyproxy/envoy:v1.31.5"),
            "validated with",
        ),
        "a service without a healthcheck": (lambda c: service(c, "query-service").pop("healthcheck"), "no healthcheck"),
        "Envoy not waiting for health": (
            lambda c: service(c, "envoy").__setitem__("depends_on", ["command-service", "query-service"]),
            "service_healthy",
        ),
        "no trace endpoint": (
            lambda c: service(c, "command-service")["environment"].pop("OTEL_EXPORTER_OTLP_ENDPOINT"),
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
    }
    print("-- each compose trap, put back, is caught")
    for what, (mutate, expected) in compose_cases.items():
        c = copy.deepcopy(compose)
        mutate(c)
        caught = [f for _, fs in compose_guards(c, makefile, envoy_version) for f in fs if expected in f]
        print(f"  {'ok  ' if caught else 'FAIL'} {what}: {caught[0] if caught else 'not caught'}")
        failed += not caught
    plain_build = makefile.replace("DOCKER_BUILDKIT=1 ", "")
    caught = [f for _, fs in compose_guards(compose, plain_build, envoy_version) for f in fs if "DOCKER_BUILDKIT" in f]
    print(f"  {'ok  ' if caught else 'FAIL'} docker build without BuildKit: {caught[0] if caught else 'not caught'}")
    failed += not caught

    print("-- the schema validation refuses a broken object")
    broken = copy.deepcopy(deployment(good))
    broken["spec"]["strategy"]["rollingUpdate"]["maxSurgee"] = 1
    failures, _ = validate_builtin([broken], kubernetes_versions()[-1:])
    print(f"  {'ok  ' if failures else 'FAIL'} an unknown field in a Deployment: {failures[0] if failures else 'accepted'}")
    failed += not failures
    return failed


def main():
    command = sys.argv[1]
    if command == "k8s":
        failed = run_k8s(sys.argv[2])
    elif command == "compose":
        failed = run_compose(sys.argv[2])
    elif command == "self-test":
        failed = self_test(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
