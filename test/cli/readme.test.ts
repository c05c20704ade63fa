// README.md against the code: the configuration reference is what scripts/config-reference.ts prints (so a new field
// must be documented: `npm run docs:config`), every command and default port it names exists, the quick start's
// commands are the package's scripts, and the example configuration file is valid.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildFullProgram, EXIT_USAGE } from "../../src/cli.js";
import { FIELDS, loadConfig } from "../../src/config.js";
import { ROLE_NAMES } from "../../src/app/roles.js";
import { configReference, README_URL, readmeBlock, withReference } from "../../scripts/config-reference.js";

const readme = readFileSync(README_URL, "utf8");
const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { scripts: Record<string, string>; bin: Record<string, string> };

/** The rows of the Markdown table that follows `heading`, split into cells (escaped pipes kept inside a cell). */
function tableAfter(heading: string): string[][] {
  const section = readme.slice(readme.indexOf(heading));
  const lines = section.split("\n").slice(1);
  const start = lines.findIndex((l) => l.startsWith("|"));
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    rows.push(line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim()));
  }
  return rows;
}

describe("README configuration reference", () => {
  it("is exactly what `node --import tsx scripts/config-reference.ts` prints (run `npm run docs:config` after adding a field)", () => {
    expect(readmeBlock(readme), "README.md lacks the config-reference markers").toBeDefined();
    expect(readmeBlock(readme)).toBe(configReference());
  });

  it("lists every field's variable and key once, and `docs:config` is the script that rewrites it", () => {
    const block = readmeBlock(readme) ?? "";
    for (const f of FIELDS) {
      expect(block.split(`\`${f.env}\``).length - 1, f.env).toBe(1);
      expect(block, f.path).toContain(`\`${f.path}\``);
    }
    expect(pkg.scripts["docs:config"]).toContain("scripts/config-reference.ts --write");
  });

  it("the rewrite replaces only the block", () => {
    const before = "intro\n<!-- config-reference:start -->\nold table\n<!-- config-reference:end -->\nrest\n";
    expect(withReference(before, "| new |\n")).toBe("intro\n<!-- config-reference:start -->\n| new |\n<!-- config-reference:end -->\nrest\n");
  });
});

describe("README claims", () => {
  it("the commands table names every command of `dispatcher --help`, and only those", async () => {
    const names = (await buildFullProgram(() => undefined)).commands.map((c) => c.name());
    const table = tableAfter("## Commands").map((r) => r[0] ?? "");
    for (const name of names) expect(table.some((cell) => cell.startsWith(`\`dispatcher ${name}`)), `README lacks dispatcher ${name}`).toBe(true);
    for (const cell of table) expect(names, cell).toContain(/^`dispatcher (\S+)/.exec(cell)?.[1]?.replace(/`$/, "").split("\\")[0]);
  });

  it("the roles table names every role, and the roles in its examples exist", () => {
    expect(tableAfter("Roles (").map((r) => /^`([a-z]+)`$/.exec(r[0] ?? "")?.[1]).sort()).toEqual([...ROLE_NAMES].sort());
    for (const m of readme.matchAll(/--role ([a-z,]+)/g)) for (const role of (m[1] ?? "").split(",")) expect(ROLE_NAMES, m[0]).toContain(role);
  });

  it("the ports table gives each configurable port's default and variable", () => {
    const rows = tableAfter("## Ports");
    expect(rows.length).toBeGreaterThan(0);
    for (const [port, , configure] of rows) {
      const env = /`(DISPATCHER_[A-Z_]+)`/.exec(configure ?? "")?.[1];
      if (!env) continue;
      const field = FIELDS.find((f) => f.env === env);
      expect(field, env).toBeDefined();
      expect(String(field?.default), env).toBe(port);
    }
    expect(rows.map((r) => r[0])).toContain(String(FIELDS.find((f) => f.path === "server.port")?.default));
  });

  it("the quick start's two commands are the package's scripts, and `dispatcher` is its bin", () => {
    expect(readme).toContain("npm ci && npm start");
    expect(readme).toMatch(/^npm test\b/m);
    // exec: npm's shell hands its process to node, so that SIGTERM reaches the dispatcher (test/cli/npm-start.test.ts).
    expect(pkg.scripts.start).toBe("exec node bin/dispatcher.js start");
    expect(pkg.scripts.test).toContain("vitest run");
    expect(pkg.bin.dispatcher).toBe("bin/dispatcher.js");
  });

  it("exit code 2 is what the CLI returns for bad configuration", () => {
    expect(readme).toMatch(/Exit codes: 0 success, 1 failure, 2 bad configuration/);
    expect(EXIT_USAGE).toBe(2);
  });

  it("deploy/config.example.json, which the README points to, is a valid configuration", () => {
    expect(readme).toContain("deploy/config.example.json");
    expect(() => loadConfig({}, new URL("../../deploy/config.example.json", import.meta.url).pathname)).not.toThrow();
  });
});
