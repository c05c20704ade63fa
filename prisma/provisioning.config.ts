// Prisma CLI configuration for the provisioning database: `prisma generate --config prisma/provisioning.config.ts`.
import { defineConfig } from "prisma/config";
import { useSchemaEngineStandIn } from "./schema-engine.js";

useSchemaEngineStandIn();

export default defineConfig({
  schema: "provisioning/schema.prisma",
  migrations: { path: "provisioning/migrations" },
  // Only Prisma's own migrate commands read this; the service takes its URL from src/config.ts.
  datasource: { url: process.env.DISPATCHER_PROVISIONING_URL || "mysql://root@127.0.0.1:3306/dispatcher_provisioning" },
});
