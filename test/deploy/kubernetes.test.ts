// deploy/kubernetes/ cannot be applied here (no cluster), so its shape is checked instead: every role has its
// Deployment and PodDisruptionBudget, one Job migrates, ports and probes match what each role serves, the grace
// outlasts the shutdown grace, every container runs as the image's non-root user with requests, every DISPATCHER_*
// variable is a configuration field that loads, and the secrets reach exactly the roles that need them. Where
// kubectl is installed, kustomize also renders the directory.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { ROLE_NAMES } from "../../src/app/roles.js";
import { FIELDS, loadConfig } from "../../src/config.js";
import { ROOT } from "../support/process.js";
import { generatorFiles, instructionsOf, parseDockerfile, readKustomization, secretKeys, type Container, type EnvVar, type K8sObject, type PodSpec } from "./manifests.js";

const DIR = join(ROOT, "deploy", "kubernetes");
const tree = readKustomization(DIR);
const { objects, kustomization } = tree;
const EXAMPLES = "secrets.example";
const ofKind = (kind: string): K8sObject[] => objects.filter((o) => o.kind === kind);
const deployments = new Map(ofKind("Deployment").map((d) => [d.metadata.name, d]));
const pod = (o: K8sObject): PodSpec => o.spec?.template?.spec as PodSpec;
const main = (o: K8sObject): Container => pod(o).containers[0] as Container;
const generators = new Map((kustomization.secretGenerator ?? []).map((g) => [g.name, g]));
const image = parseDockerfile(readFileSync(join(ROOT, "deploy", "Dockerfile"), "utf8")).at(-1);
const imageUid = Number(instructionsOf(image ?? { name: "", base: "", instructions: [] }, "USER").at(-1)?.rest.split(":")[0]);
const imageEnv = Object.fromEntries(
  instructionsOf(image ?? { name: "", base: "", instructions: [] }, "ENV").flatMap((i) => [...i.rest.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]])),
) as Record<string, string>;

/** Stand-in values for what comes from Secrets, so that a container's environment can be loaded as configuration. */
const STAND_IN: Record<string, string> = {
  "provisioning-url": "mysql://dispatcher:pw@db:3306/dispatcher_provisioning",
  "analytics-url": "mysql://dispatcher:pw@db:3306/dispatcher_analytics",
  url: "mysql://km:pw@db:3306/km_credentials",
  "credential-key": Buffer.alloc(32, 7).toString("base64"),
};

/** A container's environment as the process sees it: the image's ENV, its ConfigMaps, then its own variables. */
function environment(c: Container): Record<string, string> {
  const env: Record<string, string> = { ...imageEnv };
  for (const from of c.envFrom ?? []) Object.assign(env, tree.configMaps.get(from.configMapRef?.name ?? "") ?? {});
  for (const v of c.env ?? []) env[v.name] = v.value ?? STAND_IN[v.valueFrom?.secretKeyRef?.key ?? ""] ?? "";
  return env;
}
const secretRefs = (c: Container): string[] => (c.env ?? []).flatMap((v: EnvVar) => (v.valueFrom?.secretKeyRef ? [v.valueFrom.secretKeyRef.name] : []));

/** Secret name and key of the file at `path` in the pod, when a mounted Secret (or projected Secrets) provides it. */
function mountedSecretFile(o: K8sObject, path: string): { secret: string; key: string } | undefined {
  const mount = main(o).volumeMounts?.find((m) => path.startsWith(`${m.mountPath}/`));
  const volume = pod(o).volumes?.find((v) => v.name === mount?.name);
  if (!mount || !volume) return undefined;
  const key = path.slice(mount.mountPath.length + 1);
  const secrets = volume.secret ? [volume.secret.secretName] : (volume.projected?.sources ?? []).flatMap((s) => (s.secret ? [s.secret.name] : []));
  const secret = secrets.find((name) => {
    const gen = generators.get(name);
    return gen && secretKeys(tree, gen, EXAMPLES).includes(key);
  });
  return secret ? { secret, key } : undefined;
}
const mountedSecrets = (o: K8sObject): string[] =>
  (pod(o).volumes ?? []).flatMap((v) => (v.secret ? [v.secret.secretName] : (v.projected?.sources ?? []).flatMap((s) => (s.secret ? [s.secret.name] : []))));

const seconds = (c: Container): number => Number(c.lifecycle?.preStop?.exec?.command[0] === "sleep" ? c.lifecycle.preStop.exec.command[1] : (c.lifecycle?.preStop?.sleep?.seconds ?? 0));
const workloads = [...deployments.values(), ...ofKind("Job")];

describe("deploy/kubernetes", () => {
  it("every resource the kustomization names exists; every object lands in one namespace", () => {
    for (const file of kustomization.resources) expect(existsSync(join(DIR, file)), file).toBe(true);
    expect(kustomization.namespace).toBe("dispatcher");
    expect(ofKind("Namespace").map((n) => n.metadata.name)).toEqual([kustomization.namespace]);
  });

  it("one Deployment per role, running that role alone from the image; one Job migrates, and nothing else does", () => {
    expect([...deployments.keys()].sort()).toEqual([...ROLE_NAMES].sort());
    const imageName = kustomization.images?.[0]?.name;
    for (const [role, d] of deployments) {
      expect(pod(d).containers, role).toHaveLength(1);
      expect(main(d).image, role).toBe(imageName);
      expect(main(d).command, role).toBeUndefined(); // the image's entrypoint: node bin/dispatcher.js
      expect(main(d).args, role).toEqual(["serve", "--role", role]);
      expect(d.spec?.replicas ?? 1, role).toBeGreaterThanOrEqual(2);
    }
    const jobs = ofKind("Job");
    expect(jobs).toHaveLength(1);
    const job = jobs[0] as K8sObject;
    expect(main(job).args).toEqual(["migrate"]);
    expect(["Never", "OnFailure"]).toContain(pod(job).restartPolicy);
    expect(environment(main(job)).DISPATCHER_PROVISIONING_URL).toBe(STAND_IN["provisioning-url"]);
    expect(environment(main(job)).DISPATCHER_ANALYTICS_URL).toBe(STAND_IN["analytics-url"]);
    for (const w of workloads) for (const c of pod(w).initContainers ?? []) expect(c.args ?? [], w.metadata.name).not.toContain("migrate");
  });

  it("every DISPATCHER_* variable is a configuration field, and every container's environment loads", () => {
    const known = new Set(FIELDS.map((f) => f.env));
    for (const data of tree.configMaps.values()) for (const name of Object.keys(data)) expect(known.has(name), name).toBe(true);
    for (const w of workloads) {
      for (const v of main(w).env ?? []) expect(known.has(v.name), `${w.metadata.name}: ${v.name}`).toBe(true);
      const env = environment(main(w));
      expect(env.DISPATCHER_MODE, w.metadata.name).toBe("production");
      expect(() => loadConfig(env, ""), w.metadata.name).not.toThrow();
    }
  });

  it("ports: each role exposes what it serves, and its Services reach it", () => {
    const served: Record<string, number[]> = {};
    for (const [role, d] of deployments) {
      const config = loadConfig(environment(main(d)), "");
      const ports = (main(d).ports ?? []).map((p) => p.containerPort).sort();
      served[role] = ports;
      // Workers and monitors serve no API; their metrics port answers the probes (and Prometheus).
      const metricsPort = role === "worker" ? 9465 : 9466;
      const expected = role === "dispatcher" ? [config.server.port, config.bridge.port] : role === "km" ? [config.km.port] : config.metrics.enabled ? [config.metrics.port ?? metricsPort] : [];
      expect(ports, role).toEqual(expected.sort());
      if (role !== "km" && role !== "dispatcher") continue;
      // The servers must listen beyond loopback to be reachable from a Service.
      expect(role === "km" ? config.km.bind : config.server.bind, role).toBe("0.0.0.0");
      if (role === "dispatcher") expect(config.bridge.bind).toBe("0.0.0.0");
    }
    for (const svc of ofKind("Service")) {
      const selector = svc.spec?.selector as Record<string, string>;
      const targets = [...deployments.values()].filter((d) => Object.entries(selector).every(([k, v]) => d.spec?.template?.metadata?.labels?.[k] === v));
      expect(targets, svc.metadata.name).toHaveLength(1);
      const ports = main(targets[0] as K8sObject).ports ?? [];
      for (const p of svc.spec?.ports ?? []) {
        const target = ports.find((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort);
        expect(target?.containerPort, `${svc.metadata.name}:${p.port}`).toBe(p.port);
      }
    }
    // Clients find KM by its Service: km.url names it and its port.
    const kmUrl = loadConfig(environment(main(deployments.get("worker") as K8sObject)), "").km.url;
    const kmService = ofKind("Service").find((s) => s.metadata.name === kmUrl.split(":")[0]);
    expect(kmService?.spec?.ports?.map((p) => p.port)).toEqual([Number(kmUrl.split(":")[1])]);
  });

  it("probes: the dispatcher through `dispatcher health` (alive: its port), KM (mutual TLS only) by its port, workers and monitors on their metrics port's /readyz and /healthz", () => {
    for (const [role, d] of deployments) {
      const c = main(d);
      const probes = [c.startupProbe, c.readinessProbe, c.livenessProbe];
      if (role === "dispatcher") {
        // Alive: the port answers. Health is NOT_SERVING while the database is gone, which a restart would not cure.
        expect(c.livenessProbe?.tcpSocket?.port, role).toBe("grpc");
        for (const p of [c.startupProbe, c.readinessProbe]) {
          expect(p?.exec?.command.slice(0, 2), role).toEqual(["dispatcher", "health"]);
          // The check's own deadline ends before Kubernetes gives up on the probe.
          const deadline = Number(p?.exec?.command[p.exec.command.indexOf("--timeout") + 1]);
          expect(deadline, role).toBeLessThan((p?.timeoutSeconds ?? 1) * 1000);
        }
      } else if (role === "km") {
        for (const p of probes) expect(p?.tcpSocket?.port, role).toBe(c.ports?.[0]?.name);
      } else {
        const metrics = c.ports?.find((p) => p.name === "metrics");
        expect(metrics?.containerPort, role).toBe(loadConfig(environment(c), "").metrics.port ?? (role === "worker" ? 9465 : 9466));
        // Ready: the role runs, NATS is connected, the process is not stopping. Alive and started: the process answers.
        expect(c.readinessProbe?.httpGet, role).toEqual({ path: "/readyz", port: "metrics" });
        expect(c.livenessProbe?.httpGet, role).toEqual({ path: "/healthz", port: "metrics" });
        expect(c.startupProbe?.httpGet, role).toEqual({ path: "/healthz", port: "metrics" });
      }
      // A liveness probe never fires while the process starts: a startup probe covers the start when there is one.
      if (c.livenessProbe) expect(c.startupProbe, role).toBeDefined();
    }
  });

  it("termination grace above preStop + server.shutdownGraceMs, with room to close", () => {
    for (const [role, d] of deployments) {
      const grace = loadConfig(environment(main(d)), "").server.shutdownGraceMs / 1000;
      expect(pod(d).terminationGracePeriodSeconds, role).toBeGreaterThanOrEqual(seconds(main(d)) + grace + 5);
    }
  });

  it("every pod runs as the image's non-root user, without privileges, writing only to its volumes, with requests", () => {
    expect(imageUid).toBeGreaterThan(0);
    for (const w of workloads) {
      const name = w.metadata.name;
      const p = pod(w);
      expect(p.securityContext?.runAsNonRoot, name).toBe(true);
      expect(p.securityContext?.runAsUser, name).toBe(imageUid);
      expect(p.securityContext?.fsGroup, name).toBe(imageUid);
      expect(p.securityContext?.seccompProfile?.type, name).toBe("RuntimeDefault");
      for (const c of [...p.containers, ...(p.initContainers ?? [])]) {
        expect(c.securityContext?.allowPrivilegeEscalation, name).toBe(false);
        expect(c.securityContext?.capabilities?.drop, name).toEqual(["ALL"]);
        expect(c.securityContext?.readOnlyRootFilesystem, name).toBe(true);
        // The data directory (logs, KM's audit file) and /tmp are writable volumes.
        for (const path of [loadConfig(environment(c), "").dataDir, "/tmp"]) {
          const mount = c.volumeMounts?.find((m) => m.mountPath === path);
          expect(mount && !mount.readOnly && p.volumes?.find((v) => v.name === mount.name)?.emptyDir, `${name}: ${path}`).toBeTruthy();
        }
        expect(c.resources?.requests?.cpu, name).toBeTruthy();
        expect(c.resources?.requests?.memory, name).toBeTruthy();
        expect(c.resources?.limits?.memory, name).toBeTruthy();
      }
    }
  });

  it("a PodDisruptionBudget per role that selects its pods and lets one go at a time", () => {
    const pdbs = ofKind("PodDisruptionBudget");
    for (const [role, d] of deployments) {
      const mine = pdbs.filter((b) => {
        const sel = (b.spec?.selector as { matchLabels?: Record<string, string> })?.matchLabels ?? {};
        return Object.keys(sel).length > 0 && Object.entries(sel).every(([k, v]) => d.spec?.template?.metadata?.labels?.[k] === v);
      });
      expect(mine, role).toHaveLength(1);
      const budget = mine[0]?.spec;
      // Never a budget that blocks every eviction (a node drain would hang).
      if (budget?.minAvailable !== undefined) expect(Number(budget.minAvailable), role).toBeLessThan(d.spec?.replicas ?? 1);
      else expect(Number(budget?.maxUnavailable), role).toBeGreaterThanOrEqual(1);
    }
  });

  it("secrets: KM alone gets the master keys and its database; KM's clients get the channel key and a certificate naming them", () => {
    const referenced = workloads.flatMap((w) => [...secretRefs(main(w)), ...mountedSecrets(w)]);
    for (const name of referenced) expect(generators.has(name), name).toBe(true);
    for (const w of workloads) {
      for (const v of main(w).env ?? []) {
        const ref = v.valueFrom?.secretKeyRef;
        if (ref) expect(secretKeys(tree, generators.get(ref.name) as never, EXAMPLES), `${w.metadata.name}: ${v.name}`).toContain(ref.key);
      }
    }
    const km = deployments.get("km") as K8sObject;
    const kmEnv = environment(main(km));
    expect(kmEnv.DISPATCHER_KM_DATABASE_URL).toBe(STAND_IN.url);
    expect(kmEnv.DISPATCHER_PROVISIONING_URL).toBeUndefined();
    expect(kmEnv.DISPATCHER_MQ_URL).toBeUndefined();
    expect(kmEnv.DISPATCHER_ENCRYPTION_MASTER_KEYS).toBeUndefined();
    expect(mountedSecretFile(km, kmEnv.DISPATCHER_ENCRYPTION_MASTER_KEYS_FILE ?? "")?.secret).toBe("km-master-keys");
    for (const v of ["DISPATCHER_ENCRYPTION_KM_CHANNEL_KEY_FILE", "DISPATCHER_KM_TLS_CA", "DISPATCHER_KM_SERVER_CERT", "DISPATCHER_KM_SERVER_KEY"]) {
      expect(mountedSecretFile(km, kmEnv[v] ?? ""), v).toBeDefined();
    }
    expect(mountedSecretFile(km, kmEnv.DISPATCHER_KM_SERVER_CERT ?? "")?.secret).toBe("km-server-tls");
    for (const w of workloads.filter((o) => o !== km)) {
      expect(mountedSecrets(w), w.metadata.name).not.toContain("km-master-keys");
      expect(secretRefs(main(w)), w.metadata.name).not.toContain("km-database");
    }
    // The certificate's CN names the caller (km.clientPrincipals): the dispatcher stores, workers and the monitor use.
    const cn: Record<string, string> = { dispatcher: "km-client-dispatcher", worker: "km-client-worker", monitor: "km-client-worker" };
    for (const [role, secret] of Object.entries(cn)) {
      const d = deployments.get(role) as K8sObject;
      const env = environment(main(d));
      expect(env.DISPATCHER_KM_URL, role).toBeTruthy();
      expect(env.DISPATCHER_AGENT_CREDENTIAL_KEY, role).toBe(STAND_IN["credential-key"]);
      expect(mountedSecretFile(d, env.DISPATCHER_ENCRYPTION_KM_CHANNEL_KEY_FILE ?? "")?.secret, role).toBe("km-channel-key");
      for (const v of ["DISPATCHER_KM_TLS_CA", "DISPATCHER_KM_TLS_CERT", "DISPATCHER_KM_TLS_KEY"]) expect(mountedSecretFile(d, env[v] ?? "")?.secret, `${role}: ${v}`).toBe(secret);
    }
    // Mounted keys are readable by the pod's group only (YAML 1.2 reads a leading-zero 0440 as decimal: written 288).
    for (const w of workloads) for (const v of pod(w).volumes ?? []) if (v.secret || v.projected) expect(v.secret?.defaultMode ?? v.projected?.defaultMode, `${w.metadata.name}: ${v.name}`).toBe(0o440);
  });

  it("the secret files are not in the repository, git ignores them, and each env-file secret has a committed example", () => {
    for (const gen of generators.values()) {
      for (const file of generatorFiles(gen)) {
        expect(existsSync(join(DIR, file)), file).toBe(false);
        expect(ignoredByGit(join(DIR, file)), file).toBe(true);
      }
      for (const env of gen.envs ?? []) expect(existsSync(join(DIR, EXAMPLES, env.slice(env.lastIndexOf("/") + 1))), env).toBe(true);
      if (gen.type === "kubernetes.io/tls") expect(secretKeys(tree, gen, EXAMPLES).sort(), gen.name).toEqual(["ca.crt", "tls.crt", "tls.key"]);
    }
  });

  it.skipIf(!hasKubectl())("kustomize renders it, every reference to a generated ConfigMap or Secret follows its hashed name", () => {
    const work = mkdtempSync(join(tmpdir(), "dispatcher-kustomize-"));
    try {
      cpSync(DIR, work, { recursive: true });
      // Stand-in secret files: the examples for env files, any bytes for the rest.
      for (const gen of generators.values()) {
        for (const file of generatorFiles(gen)) {
          mkdirSync(dirname(join(work, file)), { recursive: true });
          const example = join(DIR, EXAMPLES, file.slice(file.lastIndexOf("/") + 1));
          writeFileSync(join(work, file), existsSync(example) ? readFileSync(example) : "stand-in\n");
        }
      }
      const rendered = parseAllDocuments(execFileSync("kubectl", ["kustomize", work], { encoding: "utf8" })).map((d) => d.toJS() as K8sObject);
      const names = (list: K8sObject[]): string[] => list.filter((o) => !["ConfigMap", "Secret"].includes(o.kind)).map((o) => `${o.kind}/${o.metadata.name}`).sort();
      expect(names(rendered)).toEqual(names(objects));
      const generated = rendered.filter((o) => o.kind === "ConfigMap" || o.kind === "Secret").map((o) => o.metadata.name);
      expect(generated).toHaveLength(tree.configMaps.size + generators.size);
      const text = JSON.stringify(rendered.filter((o) => o.spec?.template));
      for (const name of [...tree.configMaps.keys(), ...generators.keys()]) expect(text, name).not.toMatch(new RegExp(`"${name}"`));
      for (const r of rendered.filter((o) => o.spec?.template)) expect(main(r).image, r.metadata.name).toMatch(/\/dispatcher:/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

function ignoredByGit(path: string): boolean {
  try {
    execFileSync("git", ["check-ignore", "-q", path], { cwd: ROOT, stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function hasKubectl(): boolean {
  try {
    execFileSync("kubectl", ["version", "--client"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
