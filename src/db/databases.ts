// The project's databases in one list: which config field holds each URL and where its schema and migrations live.
// KM's credentials database joins by adding one entry (and prisma/credentials.config.ts + prisma/credentials/).
import { fileURLToPath } from "node:url";
import type { Config } from "../config.js";

export interface KnownDatabase {
  /** Also the folder under prisma/ and under src/gen/prisma/. */
  name: "provisioning" | "analytics";
  migrationsDir: string;
  url(config: Config): string;
  /** Which roles migrate it: `dispatcher migrate` does all; KM's database is migrated by KM alone. */
  owner: "dispatcher" | "km";
}

const prismaDir = (name: string): string => fileURLToPath(new URL(`../../prisma/${name}/`, import.meta.url));

export const DATABASES: readonly KnownDatabase[] = [
  { name: "provisioning", migrationsDir: `${prismaDir("provisioning")}migrations`, url: (c) => c.provisioning.url, owner: "dispatcher" },
  { name: "analytics", migrationsDir: `${prismaDir("analytics")}migrations`, url: (c) => c.analytics.url, owner: "dispatcher" },
];
