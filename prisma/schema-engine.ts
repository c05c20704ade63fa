// Lets the Prisma CLI run where its schema engine (a separate download) is missing, which is the case offline.
// `prisma generate` only needs the engine path to exist; migrations are applied by `dispatcher migrate`
// (src/db/migrate.ts), so nothing here ever executes the engine.
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** Points PRISMA_SCHEMA_ENGINE_BINARY at a stand-in when no real schema engine is installed; sets CHECKPOINT_DISABLE. */
export function useSchemaEngineStandIn(env: NodeJS.ProcessEnv = process.env): void {
  env.CHECKPOINT_DISABLE ??= "1";
  if (env.PRISMA_SCHEMA_ENGINE_BINARY) return;
  const enginesDir = join(here, "..", "node_modules", "@prisma", "engines");
  const installed = existsSync(enginesDir) && readdirSync(enginesDir).some((f) => f.startsWith("schema-engine"));
  if (!installed) env.PRISMA_SCHEMA_ENGINE_BINARY = join(here, "schema-engine-unavailable.sh");
}
