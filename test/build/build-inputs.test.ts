// What decides whether the test run's processes may run dist/: a build's digest of its inputs matches the tree's only
// while nothing under src/ (or the files that steer the compile) has changed since that build.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { buildInputsDigest, INPUTS_FILE, isCurrentBuild } from "../../scripts/build-inputs.mjs";

let root = "";

function tree(): string {
  root = mkdtempSync(join(tmpdir(), "build-inputs-"));
  mkdirSync(join(root, "src", "jobs"), { recursive: true });
  writeFileSync(join(root, "src", "cli.ts"), "export const a = 1;\n");
  writeFileSync(join(root, "src", "jobs", "worker.ts"), "export const b = 2;\n");
  writeFileSync(join(root, "tsconfig.build.json"), "{}\n");
  return root;
}

function build(at: string): void {
  mkdirSync(join(at, "dist"), { recursive: true });
  writeFileSync(join(at, "dist", "cli.js"), "export const a = 1;\n");
  writeFileSync(join(at, "dist", INPUTS_FILE), `${buildInputsDigest(at)}\n`);
}

afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("a build's inputs", () => {
  it("match the tree it was built from", () => {
    const at = tree();
    build(at);
    expect(isCurrentBuild(at, join(at, "dist"))).toBe(true);
  });

  it("no longer match once a source changes, a source is added, removed or renamed, or the compile's settings change", () => {
    const at = tree();
    const changes = [
      () => writeFileSync(join(at, "src", "jobs", "worker.ts"), "export const b = 3;\n"),
      () => writeFileSync(join(at, "src", "jobs", "new.ts"), ""),
      () => rmSync(join(at, "src", "jobs", "new.ts")),
      () => renameSync(join(at, "src", "jobs", "worker.ts"), join(at, "src", "jobs", "worker2.ts")),
      () => writeFileSync(join(at, "tsconfig.build.json"), '{"compilerOptions":{}}\n'),
    ];
    for (const change of changes) {
      build(at);
      change();
      expect(isCurrentBuild(at, join(at, "dist"))).toBe(false);
    }
  });

  it("are not current without a build, or without the build's record", () => {
    const at = tree();
    expect(isCurrentBuild(at, join(at, "dist"))).toBe(false);
    build(at);
    rmSync(join(at, "dist", INPUTS_FILE));
    expect(isCurrentBuild(at, join(at, "dist"))).toBe(false);
  });
});
