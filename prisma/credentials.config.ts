// Prisma CLI configuration for KM's credentials database: `prisma generate --config prisma/credentials.config.ts`.
import { defineConfig } from "prisma/config";
import { useSchemaEngineStandIn } from "./schema-engine.js";

useSchemaEngineStandIn();

export default defineConfig({
  schema: "credentials/schema.prisma",
  migrations: { path: "credentials/migrations" },
  // Only Prisma's own migrate commands read this; KM takes its URL from src/config.ts (km.databaseUrl).
  datasource: { url: process.env.DISPATCHER_KM_DATABASE_URL || "mysql://root@127.0.0.1:3306/dispatcher_credentials" },
});
