#!/usr/bin/env node
// Generates src/gen/: TypeScript from proto/ (buf + ts-proto), a descriptor set for reflection (and the client's list
// of idempotent methods from it), and one Prisma client per schema under prisma/. Runs at `npm ci` (postinstall) and as `npm run generate`.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const started = Date.now();
const step = (what) => process.stdout.write(`generate: ${what}\n`);

/** The methods the client may retry (idempotency_level NO_SIDE_EFFECTS or IDEMPOTENT), so that it need not decode the descriptor set at start. */
function writeIdempotentMethods() {
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(join(root, "src/gen/descriptors.binpb")));
  const safe = [MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS, MethodOptions_IdempotencyLevel.IDEMPOTENT];
  const methods = set.file.flatMap((file) =>
    file.service.flatMap((service) =>
      service.method.filter((m) => safe.includes(m.options?.idempotencyLevel)).map((m) => ({ service: file.package ? `${file.package}.${service.name}` : service.name, method: m.name })),
    ),
  );
  writeFileSync(join(root, "src/gen/idempotent-methods.json"), `${JSON.stringify(methods, null, 1)}\n`);
}

function run(cmd, args, env = {}) {
  execFileSync(cmd, args, { cwd: root, stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, ...env } });
}

if (!existsSync(bin("buf"))) {
  // A production install without dev dependencies has nothing to generate with; it ships src/gen prebuilt.
  step("buf not installed (production install?); skipping");
  process.exit(0);
}

rmSync(join(root, "src/gen/proto"), { recursive: true, force: true });
step("proto → src/gen/proto (buf + ts-proto)");
run(bin("buf"), ["generate"]);
mkdirSync(join(root, "src/gen"), { recursive: true });
step("proto → src/gen/descriptors.binpb (reflection)");
run(bin("buf"), ["build", "--as-file-descriptor-set", "-o", "src/gen/descriptors.binpb"]);
step("descriptors → src/gen/idempotent-methods.json (the client's retry policy)");
writeIdempotentMethods();

// Prisma's schema engine is only needed by migrate/db push, which this project replaces with `dispatcher migrate`;
// generate needs a path that exists when the engine could not be downloaded.
const prismaEnv = { CHECKPOINT_DISABLE: "1", PRISMA_HIDE_UPDATE_MESSAGE: "1" };
for (const file of readdirSync(join(root, "prisma")).filter((f) => f.endsWith(".config.ts")).sort()) {
  step(`prisma/${file} → src/gen/prisma`);
  run(bin("prisma"), ["generate", "--config", join("prisma", file)], prismaEnv);
}
step(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
