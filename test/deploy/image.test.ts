// deploy/Dockerfile cannot be built here (no Docker engine), so its shape is checked instead: a build stage that
// compiles, a production-only install, and a final stage that takes the compiled program, those dependencies and
// every file read at run time, installs and compiles nothing, runs plain node as a non-root user and answers its
// health check through `dispatcher health`.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/process.js";
import { copyParts, instructionsOf, parseDockerfile, type Stage } from "./manifests.js";

const DOCKERFILE = join(ROOT, "deploy", "Dockerfile");
const stages = parseDockerfile(readFileSync(DOCKERFILE, "utf8"));
const final = stages.at(-1) as Stage;
const stage = (name: string): Stage | undefined => stages.find((s) => s.name === name);
const runs = (s: Stage): string[] => instructionsOf(s, "RUN").map((r) => r.rest);
const copies = (s: Stage) => instructionsOf(s, "COPY").map(copyParts);
const npmCi = (s: Stage): string[] => runs(s).filter((r) => /\bnpm ci\b/.test(r));
const WORKDIR = instructionsOf(final, "WORKDIR").at(-1)?.rest ?? "/";

/** Where the final stage puts each path it copies, relative to its working directory (`./` and `dir/`: by name). */
const shipped = copies(final).flatMap((c) =>
  c.sources.map((source) => {
    const dest = c.dest.startsWith("/") ? c.dest : join(WORKDIR, c.dest);
    return relative(WORKDIR, /(\/|^\.)$/.test(c.dest) ? join(dest, basename(source)) : dest);
  }),
);
const ships = (path: string): boolean => shipped.some((p) => path === p || path.startsWith(`${p}/`));

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

describe("deploy/Dockerfile", () => {
  it("is multi-stage: the final stage copies from stages that install, and builds on the same base", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const from = new Set(copies(final).flatMap((c) => (c.from ? [c.from] : [])));
    for (const name of from) expect(stage(name), name).toBeDefined();
    for (const s of stages) expect(s.base, s.name).toBe(final.base);
  });

  it("the build stage installs with the dev tooling (generate + compile at install) and checks the compiled entry points", () => {
    const build = stages.find((s) => copies(final).some((c) => c.from === s.name && c.sources.some((p) => p.endsWith("/dist"))));
    expect(build, "a stage that dist/ comes from").toBeDefined();
    const install = npmCi(build as Stage);
    expect(install).toHaveLength(1);
    expect(install[0]).not.toMatch(/--omit|--production|--ignore-scripts/);
    expect(runs(build as Stage).join(" ")).toMatch(/test -f dist\/cli\.js/);
  });

  it("the final stage has production dependencies only: node_modules from an `npm ci --omit=dev` stage", () => {
    const modules = copies(final).filter((c) => c.sources.some((p) => p.endsWith("node_modules")));
    expect(modules).toHaveLength(1);
    const deps = stage(modules[0]?.from ?? "") as Stage;
    expect(npmCi(deps)).toHaveLength(1);
    expect(npmCi(deps)[0]).toMatch(/--omit=dev\b/);
    // Nothing the production install could compile or run: no sources, and no install scripts.
    expect(copies(deps).flatMap((c) => c.sources)).not.toContain("src");
    expect(npmCi(deps)[0]).toMatch(/--ignore-scripts\b/);
    // A package the lock marks devOptional (a dev dependency that a production one names as an optional peer, as
    // @prisma/client names the Prisma CLI and TypeScript) is installed by --omit=dev alone.
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { devOptional?: boolean }> };
    if (Object.values(lock.packages).some((p) => p.devOptional)) expect(npmCi(deps)[0]).toMatch(/--omit=optional\b/);
  });

  it("the final stage installs and compiles nothing, and its base carries no compiler", () => {
    // The full node image ships gcc, make and python3 for node-gyp; the slim one does not.
    expect(final.base).toMatch(/^node:[\w.]+-(bookworm|bullseye|trixie)-slim$/);
    for (const run of runs(final)) {
      expect(run).not.toMatch(/\b(apt-get|apt|apk|yum|dnf|microdnf)\b/);
      expect(run).not.toMatch(/\b(npm|npx|yarn|pnpm|tsc|tsx|node-gyp|gcc|g\+\+|make)\b/);
    }
    for (const c of copies(final)) {
      expect(c.from, `COPY ${c.sources.join(" ")}: only from a stage`).toBeDefined();
      for (const source of c.sources) expect(source, "no TypeScript in the image").not.toMatch(/\.ts$|\/src$|^src$|tsconfig/);
    }
  });

  it("ships the compiled program and every file read at run time", () => {
    for (const path of ["package.json", "bin/dispatcher.js", "bin/dispatcher-agent.js", "dist/cli.js", "dist/telemetry/register.js"]) expect(ships(path), path).toBe(true);
    // Migrations of every schema: `dispatcher migrate` and KM apply them.
    for (const schema of readdirSync(join(ROOT, "prisma")).filter((d) => existsSync(join(ROOT, "prisma", d, "migrations")))) {
      expect(ships(`prisma/${schema}/migrations`), schema).toBe(true);
    }
    // Hand-written files in src/ that are not TypeScript: the build copies them to the same place under dist/.
    const runtime = filesUnder(join(ROOT, "src")).map((f) => relative(ROOT, f)).filter((f) => !f.startsWith("src/gen/") && !/\.(ts|md)$/.test(f));
    expect(runtime.length).toBeGreaterThan(0);
    for (const file of runtime) expect(ships(file) || ships(file.replace(/^src\//, "dist/")), file).toBe(true);
    // And nothing from src/ itself: no TypeScript in the image.
    expect(shipped.filter((p) => p === "src" || p.startsWith("src/"))).toEqual([]);
  });

  it("runs plain node on bin/dispatcher.js as a non-root user, production mode, with the data directory its own", () => {
    const user = instructionsOf(final, "USER").at(-1)?.rest ?? "";
    const [uid, gid] = user.split(":");
    expect(uid).toMatch(/^\d+$/); // numeric: runAsNonRoot can verify it
    expect(Number(uid)).toBeGreaterThan(0);
    expect(final.instructions.findIndex((i) => i.keyword === "USER")).toBeGreaterThan(final.instructions.findLastIndex((i) => i.keyword === "RUN"));
    const entry = instructionsOf(final, "ENTRYPOINT").at(-1)?.exec ?? [];
    expect(entry[0]).toBe("node");
    expect(entry.at(-1)).toMatch(/(^|\/)bin\/dispatcher\.js$/);
    expect(entry.join(" ")).not.toMatch(/tsx|--import/);
    expect(instructionsOf(final, "CMD").at(-1)?.exec).toEqual(["serve", "--role", "dispatcher"]);
    const env = instructionsOf(final, "ENV").map((e) => e.rest).join(" ");
    expect(env).toMatch(/\bDISPATCHER_MODE=production\b/);
    const dataDir = /\bDISPATCHER_DATA_DIR=(\S+)/.exec(env)?.[1];
    expect(dataDir).toBeTruthy();
    expect(runs(final).join(" ")).toContain(`chown ${uid}:${gid ?? uid} ${dataDir}`);
  });

  it("HEALTHCHECK asks `dispatcher health`, which is on PATH", () => {
    const health = instructionsOf(final, "HEALTHCHECK");
    expect(health).toHaveLength(1);
    const cmd = health[0]?.rest.replace(/^CMD\s+/, "") ?? "";
    expect(JSON.parse(cmd).slice(0, 2)).toEqual(["dispatcher", "health"]);
    expect(runs(final).join(" ")).toMatch(/ln -s \S*\/bin\/dispatcher\.js \/usr\/local\/bin\/dispatcher\b/);
    expect(health[0]?.flags.timeout).toBeTruthy();
  });

  it("the build context leaves out what the host installed, generated or keeps secret", () => {
    const ignore = readFileSync(join(ROOT, "deploy", "Dockerfile.dockerignore"), "utf8").split("\n").map((l) => l.trim());
    for (const entry of ["**/node_modules", "dist", "src/gen", "var", "deploy/secrets", "deploy/kubernetes/secrets", "**/.env", ".git"]) {
      expect(ignore, entry).toContain(entry);
    }
  });
});
