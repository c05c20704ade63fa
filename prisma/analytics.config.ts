// Prisma CLI configuration for the analytics database: `prisma generate --config prisma/analytics.config.ts`.
import { defineConfig } from "prisma/config";
import { useSchemaEngineStandIn } from "./schema-engine.js";

useSchemaEngineStandIn();

export default defineConfig({
  schema: "analytics/schema.prisma",
  migrations: { path: "analytics/migrations" },
  // Only Prisma's own migrate commands read this; the service takes its URL from src/config.ts.
  datasource: { url: process.env.DISPATCHER_ANALYTICS_URL || "mysql://root@127.0.0.1:3306/dispatcher_analytics" },
});
