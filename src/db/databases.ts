// The project's databases in one list: which config field holds each URL and where its schema and migrations live.
// KM's credentials database is here too (owner "km"): `dispatcher migrate` leaves it to the KM role, which migrates it
// at its start, so that the dispatcher's database user never needs access to it.
import { fileURLToPath } from "node:url";
import type { Config } from "../config.js";

export interface KnownDatabase {
  /** Also the folder under prisma/ and under src/gen/prisma/. */
  name: "provisioning" | "analytics" | "credentials";
  migrationsDir: string;
  url(config: Config): string;
  /** Who migrates it: "dispatcher" — `dispatcher migrate` and `--migrate`; "km" — the KM role, at its start. */
  owner: "dispatcher" | "km";
}

const prismaDir = (name: string): string => fileURLToPath(new URL(`../../prisma/${name}/`, import.meta.url));

export const DATABASES: readonly KnownDatabase[] = [
  { name: "provisioning", migrationsDir: `${prismaDir("provisioning")}migrations`, url: (c) => c.provisioning.url, owner: "dispatcher" },
  { name: "analytics", migrationsDir: `${prismaDir("analytics")}migrations`, url: (c) => c.analytics.url, owner: "dispatcher" },
  { name: "credentials", migrationsDir: `${prismaDir("credentials")}migrations`, url: (c) => c.km.databaseUrl, owner: "km" },
];
