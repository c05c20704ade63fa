// Readers for the deployment files the tests check without Docker or a cluster: a Dockerfile's stages and
// instructions, a kustomization with its resources and generators, and .env files as kustomize reads them.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";

export interface Instruction {
  keyword: string;
  /** The arguments as written (continuation lines joined). */
  args: string;
  /** The exec form (`["a", "b"]`) parsed, when the arguments are one. */
  exec?: string[];
  /** `--name=value` flags before the arguments (COPY --from, HEALTHCHECK --interval, RUN --mount). */
  flags: Record<string, string>;
  /** The arguments after the flags. */
  rest: string;
}

export interface Stage {
  name: string;
  /** The base image with ARG defaults substituted. */
  base: string;
  instructions: Instruction[];
}

/** The stages of a Dockerfile, in order (the last is the image). Comments, directives and blank lines are skipped. */
export function parseDockerfile(text: string): Stage[] {
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i] ?? "";
    if (/^\s*(#|$)/.test(line)) continue;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      i++;
      const next = lines[i] ?? "";
      if (/^\s*#/.test(next)) continue;
      line = line.replace(/\\\s*$/, " ") + next.trim();
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new SyntaxError(`Dockerfile: cannot read line ${i + 1}: ${line}`);
    const keyword = (m[1] as string).toUpperCase();
    const raw = (m[2] as string).trim();
    const flags: Record<string, string> = {};
    let rest = raw;
    for (let f = /^--([a-z-]+)=(\S+)\s*/.exec(rest); f; f = /^--([a-z-]+)=(\S+)\s*/.exec(rest)) {
      flags[f[1] as string] = f[2] as string;
      rest = rest.slice(f[0].length);
    }
    const instruction: Instruction = { keyword, args: raw, flags, rest, ...(rest.startsWith("[") ? { exec: JSON.parse(rest) as string[] } : {}) };
    if (keyword === "ARG" && stages.length === 0) {
      const eq = rest.indexOf("=");
      args.set(eq < 0 ? rest : rest.slice(0, eq), eq < 0 ? "" : rest.slice(eq + 1));
    } else if (keyword === "FROM") {
      const [image = "", as, name] = rest.split(/\s+/);
      const base = image.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => args.get((a ?? b) as string) ?? "");
      stages.push({ name: as?.toUpperCase() === "AS" && name ? name : String(stages.length), base, instructions: [] });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new SyntaxError(`Dockerfile: ${keyword} before the first FROM`);
      stage.instructions.push(instruction);
    }
  }
  return stages;
}

/** The instructions of a stage with the given keyword. */
export const instructionsOf = (stage: Stage, keyword: string): Instruction[] => stage.instructions.filter((i) => i.keyword === keyword);

/** A COPY's sources and destination (shell form; the exec form is not used here). */
export function copyParts(copy: Instruction): { from?: string; sources: string[]; dest: string } {
  const parts = copy.rest.split(/\s+/);
  const dest = parts.pop() as string;
  return { ...(copy.flags.from ? { from: copy.flags.from } : {}), sources: parts, dest };
}

/** Lines of a .env file as kustomize reads them: KEY=VALUE, # comments and blank lines skipped, nothing unquoted. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    if (/^\s*(#|$)/.test(line)) continue;
    const eq = line.indexOf("=");
    if (eq < 1) throw new SyntaxError(`env file: expected KEY=VALUE, got ${line}`);
    out[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  return out;
}

// A loose shape of the Kubernetes objects the tests read: the fields they look at, typed where it helps.
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } };
}
export interface Probe {
  exec?: { command: string[] };
  tcpSocket?: { port: string | number };
  httpGet?: { path: string; port: string | number };
  grpc?: { port: number };
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] }; sleep?: { seconds: number } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; runAsNonRoot?: boolean; runAsUser?: number; capabilities?: { drop?: string[] } };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
export interface Volume {
  name: string;
  emptyDir?: object;
  secret?: { secretName: string; defaultMode?: number };
  projected?: { defaultMode?: number; sources: { secret?: { name: string } }[] };
  configMap?: { name: string };
}
export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  restartPolicy?: string;
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; runAsGroup?: number; fsGroup?: number; seccompProfile?: { type: string } };
}
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: {
    replicas?: number;
    selector?: { matchLabels?: Record<string, string> } | Record<string, string>;
    template?: { metadata?: { labels?: Record<string, string> }; spec: PodSpec };
    ports?: { name?: string; port: number; targetPort?: string | number }[];
    maxUnavailable?: number | string;
    minAvailable?: number | string;
  };
}
export interface SecretGenerator {
  name: string;
  type?: string;
  envs?: string[];
  files?: string[];
}
export interface Kustomization {
  namespace?: string;
  resources: string[];
  images?: { name: string; newName?: string; newTag?: string }[];
  configMapGenerator?: { name: string; envs?: string[] }[];
  secretGenerator?: SecretGenerator[];
}

/** A kustomization directory read as kustomize would see it, minus the secrets' contents (not in the repository). */
export interface KustomizeTree {
  dir: string;
  kustomization: Kustomization;
  objects: K8sObject[];
  /** configMapGenerator name → its data (from the env files). */
  configMaps: Map<string, Record<string, string>>;
}

export function readKustomization(dir: string): KustomizeTree {
  const kustomization = parseAllDocuments(readFileSync(join(dir, "kustomization.yaml"), "utf8"))[0]?.toJS() as Kustomization;
  const objects: K8sObject[] = [];
  for (const file of kustomization.resources) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), "utf8"))) {
      if (doc.errors.length > 0) throw doc.errors[0];
      const obj = doc.toJS() as K8sObject | null;
      if (obj) objects.push(obj);
    }
  }
  const configMaps = new Map<string, Record<string, string>>();
  for (const gen of kustomization.configMapGenerator ?? []) {
    configMaps.set(gen.name, Object.assign({}, ...(gen.envs ?? []).map((f) => parseEnvFile(readFileSync(join(dir, f), "utf8")))) as Record<string, string>);
  }
  return { dir, kustomization, objects, configMaps };
}

/** The keys a generated Secret will hold: `key=path` of `files`, or the keys of the committed example of an env file. */
export function secretKeys(tree: KustomizeTree, gen: SecretGenerator, examplesDir: string): string[] {
  const fromFiles = (gen.files ?? []).map((f) => (f.includes("=") ? f.slice(0, f.indexOf("=")) : f.slice(f.lastIndexOf("/") + 1)));
  const fromEnvs = (gen.envs ?? []).flatMap((f) => {
    const example = join(tree.dir, examplesDir, f.slice(f.lastIndexOf("/") + 1));
    return existsSync(example) ? Object.keys(parseEnvFile(readFileSync(example, "utf8"))) : [];
  });
  return [...fromFiles, ...fromEnvs];
}

/** The paths (relative to the kustomization) of the files a generator reads. */
export function generatorFiles(gen: SecretGenerator): string[] {
  return [...(gen.files ?? []).map((f) => f.slice(f.indexOf("=") + 1)), ...(gen.envs ?? [])];
}
