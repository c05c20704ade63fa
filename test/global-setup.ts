// vitest globalSetup: one run id per `vitest run`, provided to every test file, and whether the processes tests start
// can run the compiled dist/; on teardown, drops what tests named after the run id (databases dt_<runId>_*, JetStream
// streams whose name contains it), even when a test forgot to.
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { TestProject } from "vitest/node";
import { loadConfig } from "../src/config.js";
import { openConnection } from "../src/db/connect.js";
import { quoteIdentifier } from "../src/db/migrate.js";
import { isCurrentBuild } from "../scripts/build-inputs.mjs";

declare module "vitest" {
  export interface ProvidedContext {
    /** 6 hex characters naming this test run's databases and streams. */
    runId: string;
    /**
     * Whether the dispatcher processes tests start run src/ through tsx rather than the compiled dist/: only when
     * dist/ is not the build of the tree as it is (loading src/ through tsx costs each process about 2 s more CPU).
     */
    fromSource: boolean;
  }
}

let runId = "";

export function setup(project: TestProject): void {
  runId = randomBytes(3).toString("hex");
  project.provide("runId", runId);
  const root = join(dirname(fileURLToPath(import.meta.url)), "..");
  const fromSource = !isCurrentBuild(root, join(root, "dist"));
  if (fromSource) console.info("test processes run src/ through tsx: dist/ is not the build of this tree (`npm run build` makes the run faster)");
  project.provide("fromSource", fromSource);
}

export async function teardown(): Promise<void> {
  if (!runId) return;
  const config = loadConfig(process.env, "");
  const results = await Promise.allSettled([dropTestDatabases(config.provisioning.url, runId), deleteTestStreams(config.mq.url, runId)]);
  for (const r of results) if (r.status === "rejected") console.warn(`test teardown: ${String(r.reason)}`);
}

/** Drops every database named dt_<runId>_… on the server of `serverUrl`. */
export async function dropTestDatabases(serverUrl: string, id: string): Promise<string[]> {
  const conn = await openConnection(serverUrl, false);
  try {
    const rows = (await conn.query("SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?", [`dt\\_${id}\\_%`])) as { name: string }[];
    for (const { name } of rows) await conn.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)}`);
    return rows.map((r) => r.name);
  } finally {
    await conn.end();
  }
}

/** Deletes every JetStream stream whose name contains the run id (tests name their streams after it). */
export async function deleteTestStreams(natsUrl: string, id: string): Promise<string[]> {
  const nc = await connect({ servers: natsUrl, timeout: 2_000 });
  try {
    const jsm = await jetstreamManager(nc);
    const doomed: string[] = [];
    for await (const name of jsm.streams.names()) if (name.toLowerCase().includes(id)) doomed.push(name);
    for (const name of doomed) await jsm.streams.delete(name);
    return doomed;
  } finally {
    await nc.close();
  }
}
