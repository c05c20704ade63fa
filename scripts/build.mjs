#!/usr/bin/env node
// Compiles src/ to dist/ (JavaScript, source maps, .d.ts) with tsconfig.build.json, and copies the files the program
// reads beside its modules (reflection descriptors, the local cloud's guest program) to the same place under dist/.
// Runs at `npm ci` (postinstall, after generate: `--install`) and as `npm run build`. At install it compiles only where
// the dev tooling is installed, as generate does: a production install (`npm ci --omit=dev`) keeps the dist/ it ships
// (TypeScript may still be there, as an optional peer of @prisma/client, but src/gen is not).
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, rmSync, writeFileSync } from "node:fs";
import { dirname, extname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildInputsDigest, filesUnder, INPUTS_FILE } from "./build-inputs.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
// `--out <dir>`: compile elsewhere than dist/ (the tests build a copy of the package without touching dist/).
const outFlag = process.argv.indexOf("--out");
const out = outFlag > 0 && process.argv[outFlag + 1] ? resolve(process.argv[outFlag + 1]) : join(root, "dist");
const started = Date.now();
const step = (what) => process.stdout.write(`build: ${what}\n`);

const atInstall = process.argv.includes("--install");
if (atInstall && !existsSync(join(root, "node_modules", ".bin", "buf"))) {
  step("dev dependencies not installed (production install?); keeping the shipped dist/");
  process.exit(0);
}
if (!existsSync(tsc)) {
  step("TypeScript is not installed: install the dev dependencies (`npm ci`) to build");
  process.exit(1);
}
if (!existsSync(join(root, "src", "gen", "proto"))) {
  step("src/gen is missing: run `npm run generate` first");
  process.exit(1);
}

// Taken before compiling: a file changed while tsc runs leaves the build marked as not the tree's.
const inputs = buildInputsDigest(root);
// A clean output: a module removed from src/ must not live on in dist/.
rmSync(out, { recursive: true, force: true });
step(`src → ${relative(root, out) || out} (tsc -p tsconfig.build.json)`);
try {
  execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json", "--outDir", out], { cwd: root, stdio: "inherit" });
} catch {
  process.exit(1);
}

// Every file under src/ that tsc does not emit: read at run time relative to its module.
const copied = filesUnder(join(root, "src")).filter((path) => ![".ts", ".tsx", ".mts", ".cts"].includes(extname(path)));
for (const file of copied) cpSync(file, join(out, relative(join(root, "src"), file)));
writeFileSync(join(out, INPUTS_FILE), `${inputs}\n`);
step(`copied ${copied.length} file(s) read at run time: ${copied.map((f) => relative(root, f)).join(", ")}`);
step(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
