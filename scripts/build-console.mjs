#!/usr/bin/env node
// Builds the operations console (`npm run build:console`): its message code from proto/ (buf + ts-proto without
// grpc-js), a type-check of console/, then Vite's production bundle into console/dist (or --out-dir DIR), which the
// dispatcher role serves on console.port. Safe to run at install: without Vite (a production install without dev
// dependencies) it says so and leaves the prebuilt console/dist as it is.
import { execFileSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const started = Date.now();
const step = (what) => process.stdout.write(`build:console: ${what}\n`);
const outAt = process.argv.indexOf("--out-dir");
const outDir = outAt > 0 ? resolve(process.argv[outAt + 1] ?? "") : join(root, "console", "dist");

function run(cmd, args, env = {}) {
  execFileSync(cmd, args, { cwd: root, stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, ...env } });
}

if (!existsSync(bin("vite")) || !existsSync(bin("buf"))) {
  step("vite or buf not installed (production install?); skipping");
  process.exit(0);
}

rmSync(join(root, "console", "src", "gen"), { recursive: true, force: true });
step("proto → console/src/gen (buf + ts-proto, no grpc-js)");
run(bin("buf"), ["generate", "--template", "console/buf.gen.yaml"]);
step("type-check console/");
run(bin("tsc"), ["--noEmit", "-p", "console/tsconfig.json"]);
step(`bundle → ${outDir} (vite)`);
run(bin("vite"), ["build", "console", "--outDir", outDir, "--emptyOutDir"]);
step(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
