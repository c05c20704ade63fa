// The shape of src/, checked on every run: the import graph has no cycle, and the layers point one way — jobs and the
// monitor depend on nothing above them, authorization (iam) never on the gRPC layer, services and repositories never
// on rpc or proto types, and only the command line reaches the composition root. A violation names the import.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SRC = join(ROOT, "src");

/** Every hand-written module of src/ (generated code is not walked; imports of it are still edges). */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return path === join(SRC, "gen") ? [] : sourceFiles(path);
    return /\.(ts|mts|mjs)$/.test(name) && !name.endsWith(".d.ts") ? [path] : [];
  });
}

/** The module a relative specifier names: `./x.js` is the source `./x.ts` (NodeNext), else the file itself. */
function resolveSpecifier(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith(".")) return undefined;
  const target = resolve(dirname(from), specifier);
  for (const candidate of [target.replace(/\.js$/, ".ts"), target.replace(/\.mjs$/, ".mts"), target]) {
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not this one
    }
  }
  return target;
}

/** Project-relative paths of what each file imports: static, type-only, re-exports and dynamic import()s alike. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const info = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
    const targets = info.importedFiles.map((f) => resolveSpecifier(file, f.fileName)).filter((t): t is string => t !== undefined);
    graph.set(rel(file), [...new Set(targets.map(rel))]);
  }
  return graph;
}

const rel = (path: string): string => relative(ROOT, path).split("\\").join("/");

/** Every strongly connected component with more than one file (or a file importing itself): the import cycles. */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    indexOf.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!indexOf.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, indexOf.get(w) as number));
      }
    }
    if (low.get(v) === indexOf.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indexOf.has(v)) visit(v);
  return found;
}

/** The domains: what users act on through the API. Lower layers (jobs, the monitor, iam's core) never import them. */
const DOMAINS = ["src/provisioning/", "src/servers/", "src/agent/", "src/analytics/", "src/system/", "src/guest/"];
/** The layer that holds the rules and the data: services and repositories, wherever they live. */
const SERVICE_OR_REPOSITORY = /\/([a-z-]+-)?(service|repository)\.ts$/;
/** What jobs and the monitor may use of iam: who a caller is, the permission table, the tenant scope. */
const IAM_CORE = ["src/iam/principal.ts", "src/iam/permissions.ts", "src/iam/scope.ts"];
/** The composition root and the command line that starts it. */
const ROOT_AND_CLI = ["src/app/", "src/commands/", "src/cli.ts"];

interface Rule {
  /** What the rule is about, as a violation reports it. */
  why: string;
  applies(from: string): boolean;
  forbids(to: string): boolean;
}

const under = (prefixes: readonly string[]) => (path: string) => prefixes.some((p) => path === p || path.startsWith(p));

export const RULES: readonly Rule[] = [
  {
    why: "jobs and the monitor depend on nothing above them: not the composition root, not a domain",
    applies: under(["src/jobs/", "src/monitor/"]),
    forbids: (to) => under(["src/app/", ...DOMAINS])(to) || (to.startsWith("src/iam/") && !IAM_CORE.includes(to)),
  },
  {
    why: "authorization lives in iam and rpc imports it, never the reverse (iam's gRPC edge lives in src/rpc/iam)",
    applies: under(["src/iam/"]),
    forbids: under(["src/rpc/"]),
  },
  {
    why: "services and repositories never import the gRPC layer or proto types: handlers map",
    applies: (from) => SERVICE_OR_REPOSITORY.test(from),
    forbids: under(["src/rpc/", "src/gen/proto/"]),
  },
  {
    why: "the guest agent program runs alone on a guest VM: it imports nothing of the dispatcher's side of agents",
    applies: under(["src/guest/"]),
    forbids: under(["src/agent/"]),
  },
  {
    why: "the dispatcher's side of agents speaks to the guest program only through the contract (agent.v1)",
    applies: under(["src/agent/"]),
    forbids: under(["src/guest/"]),
  },
  {
    why: "only the command line reaches the composition root (src/app): lower layers get what they need handed in",
    applies: (from) => !under(ROOT_AND_CLI)(from),
    forbids: under(["src/app/"]),
  },
];

/** `from -> to: why` for every import a rule forbids. */
export function violations(graph: Map<string, string[]>, rules: readonly Rule[] = RULES): string[] {
  const out: string[] = [];
  for (const [from, targets] of graph) {
    for (const to of targets) for (const rule of rules) if (rule.applies(from) && rule.forbids(to)) out.push(`${from} -> ${to}: ${rule.why}`);
  }
  return out;
}

describe("the import graph of src/", () => {
  const graph = importGraph();

  it("is read whole: every hand-written module, with the imports it makes", () => {
    expect(graph.size).toBeGreaterThan(150);
    expect(graph.get("src/app/roles.ts")).toContain("src/app/worker-role.ts");
    expect(graph.get("src/jobs/worker.ts")).toContain("src/jobs/catalog.ts");
  });

  it("has no import cycle", () => {
    expect(cycles(graph)).toEqual([]);
  });

  it("points one way: no import breaks a layering rule", () => {
    expect(violations(graph)).toEqual([]);
  });

  it("would catch what it is there to catch", () => {
    // The checks run on a graph with one forbidden import of each kind, and a cycle: each must be reported.
    const bad = new Map(graph);
    const add = (from: string, to: string) => bad.set(from, [...(bad.get(from) ?? []), to]);
    add("src/jobs/worker.ts", "src/app/resources.ts");
    add("src/monitor/loop.ts", "src/servers/service.ts");
    add("src/iam/permissions.ts", "src/rpc/adapter.ts");
    add("src/iam/handlers.ts", "src/rpc/adapter.ts");
    add("src/servers/service.ts", "src/rpc/validate.ts");
    add("src/guest/program.ts", "src/agent/secrets.ts");
    add("src/db/sql.ts", "src/jobs/service.ts");
    const found = violations(bad);
    for (const edge of ["src/jobs/worker.ts -> src/app/resources.ts", "src/monitor/loop.ts -> src/servers/service.ts", "src/iam/permissions.ts -> src/rpc/adapter.ts", "src/iam/handlers.ts -> src/rpc/adapter.ts", "src/servers/service.ts -> src/rpc/validate.ts", "src/guest/program.ts -> src/agent/secrets.ts"]) {
      expect(found.some((v) => v.startsWith(edge)), edge).toBe(true);
    }
    expect(cycles(bad).some((c) => c.includes("src/db/sql.ts") && c.includes("src/jobs/service.ts"))).toBe(true);
  });
});
