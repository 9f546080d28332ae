// Validates the custom resources of the rendered overlays (Gateway API, Prometheus Operator,
// and the CloudNativePG and Strimzi ones of k8s/components/dependencies)
// against the schemas of their CRDs, as packaged by kubernetes-models.
//   node crds.mjs OVERLAY.crds.json...   each file: a JSON array of objects
//   node crds.mjs --self-test            broken objects must be refused
// A kind with no schema here fails: nothing goes out unchecked.
import { readFileSync } from "node:fs";
import { basename } from "node:path";

const PACKAGES = {
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "postgresql.cnpg.io": "@kubernetes-models/cloudnative-pg",
  "kafka.strimzi.io": "@kubernetes-models/strimzi-kafka-operator",
};

async function modelFor(apiVersion, kind) {
  const [group] = apiVersion.split("/");
  const pkg = PACKAGES[group];
  if (!pkg) return null;
  try {
    const module = await import(`${pkg}/${apiVersion}/${kind}`);
    return module[kind] ?? null;
  } catch {
    return null;
  }
}

async function problems(object) {
  const Model = await modelFor(object.apiVersion, object.kind);
  if (!Model) return `no schema for ${object.apiVersion} ${object.kind}`;
  try {
    new Model(object).validate();
    return null;
  } catch (error) {
    return error.message;
  }
}

const describe = (o) => `${o.kind}/${o.metadata?.name} (${o.apiVersion})`;

async function check(files) {
  let failed = 0;
  for (const file of files) {
    const objects = JSON.parse(readFileSync(file, "utf8"));
    console.log(`-- overlay ${basename(file, ".crds.json")}`);
    if (objects.length === 0) {
      console.log("  FAIL no custom resources (Gateway API, Prometheus Operator)");
      failed++;
    }
    for (const object of objects) {
      const problem = await problems(object);
      console.log(`  ${problem ? "FAIL" : "ok  "} ${describe(object)} meets its CRD's schema`);
      if (problem) {
        console.log(`         ${problem}`);
        failed++;
      }
    }
  }
  return failed;
}

async function selfTest() {
  const route = {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "GRPCRoute",
    metadata: { name: "broken" },
    spec: { rules: [{ backendRefs: [{ name: "query-service", port: "grpc" }] }] },
  };
  const gateway = {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "Gateway",
    metadata: { name: "broken" },
    spec: { listeners: [{ name: "grpc", protocol: "HTTP", port: 80 }] },
  };
  const rule = {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: { name: "broken" },
    spec: { groups: [{ rules: [{ alert: "A", expr: "up == 0" }] }] },
  };
  const topic = {
    apiVersion: "kafka.strimzi.io/v1",
    kind: "KafkaTopic",
    metadata: { name: "broken" },
    spec: { topicName: "user-created_v1", partitions: "twelve" },
  };
  const postgres = {
    apiVersion: "postgresql.cnpg.io/v1",
    kind: "Cluster",
    metadata: { name: "broken" },
    spec: { instances: "one", storage: { size: "5Gi" } },
  };
  const unknown = { apiVersion: "gateway.networking.k8s.io/v1", kind: "TeapotRoute", metadata: { name: "x" } };
  let failed = 0;
  console.log("-- the CRD schemas refuse broken objects");
  for (const [what, object] of [
    ["a GRPCRoute backend port that is not a number", route],
    ["a Gateway without gatewayClassName", gateway],
    ["a PrometheusRule group without a name", rule],
    ["a KafkaTopic whose partitions are not a number", topic],
    ["a CloudNativePG Cluster whose instances are not a number", postgres],
    ["a kind with no schema", unknown],
  ]) {
    const problem = await problems(object);
    console.log(`  ${problem ? "ok  " : "FAIL"} ${what}: ${problem ?? "accepted"}`);
    if (!problem) failed++;
  }
  return failed;
}

const args = process.argv.slice(2);
const failed = args[0] === "--self-test" ? await selfTest() : await check(args);
process.exit(failed ? 1 : 0);
