// `dispatcher reset`: a development install back to nothing — its databases, its jobs stream and its data directory
// (development keys and certificates, the admin key file, local servers, logs) — for the fresh clone that meets an
// earlier install's databases ("fingerprint differs") or a developer who wants a clean slate. Refused in production
// mode and while a dispatcher of this configuration runs; without --yes it only says what it would remove.
import { existsSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, parse, resolve } from "node:path";
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { loadConfig } from "../config.js";
import { openConnection } from "../db/connect.js";
import { DATABASES } from "../db/databases.js";
import { databaseNameFromUrl, redactDatabaseUrl } from "../db/url.js";
import { UnavailableError } from "../errors.js";
import { EXIT_USAGE, STDIO, type CommandIo } from "./client-command.js";
import type { CommandOptions } from "./common.js";
import { checkPortsFree } from "./ports.js";

export interface ResetOptions extends CommandOptions {
  /** Remove for real; without it the command lists what it would remove and exits 2. */
  yes: boolean;
  io?: CommandIo;
}

export async function runReset(options: ResetOptions): Promise<number> {
  const io = options.io ?? STDIO;
  const config = loadConfig(process.env, options.configFile ?? process.env.DISPATCHER_CONFIG);
  if (config.mode !== "development") {
    io.err("dispatcher reset: refused: mode is production. It deletes databases and keys, which a production install restores from backups (docs/backup.md), never resets.\n");
    return EXIT_USAGE;
  }
  const dataDir = resolve(config.dataDir);
  const unsafe = unsafeDirectory(dataDir);
  if (unsafe) {
    io.err(`dispatcher reset: refused: dataDir ${dataDir} is ${unsafe}; point dataDir at the install's own directory (default ./var)\n`);
    return EXIT_USAGE;
  }
  const databases = DATABASES.map((d) => ({ name: d.name, url: d.url(config) }));
  io.err(
    [
      "dispatcher reset removes this development install's state:",
      ...databases.map((d) => `  database ${databaseNameFromUrl(d.url)} (${d.name}, ${redactDatabaseUrl(d.url)})`),
      `  JetStream stream ${config.mq.jobsStream} at ${config.mq.url} (queued jobs)`,
      `  directory ${dataDir} (development keys and certificates, the admin key, local servers, logs)`,
      "",
    ].join("\n"),
  );
  if (!options.yes) {
    io.err("Nothing was removed: run `dispatcher reset --yes` to remove it, then `dispatcher start` (npm start) begins anew.\n");
    return EXIT_USAGE;
  }
  // A running dispatcher or KM of this configuration would go on using what is removed under it.
  try {
    await checkPortsFree(config, ["dispatcher", "km"]);
  } catch (err) {
    if (!(err instanceof UnavailableError)) throw err;
    io.err(`dispatcher reset: refused: a dispatcher seems to be running with this configuration (${err.message}). Stop it first.\n`);
    return EXIT_USAGE;
  }
  for (const d of databases) {
    const conn = await openConnection(d.url, false);
    try {
      await conn.query(`DROP DATABASE IF EXISTS \`${databaseNameFromUrl(d.url)}\``);
    } finally {
      await conn.end();
    }
    io.err(`  removed database ${databaseNameFromUrl(d.url)}\n`);
  }
  io.err(`  ${(await deleteStream(config.mq.url, config.mq.jobsStream)) ? "removed" : "no"} stream ${config.mq.jobsStream}\n`);
  if (existsSync(dataDir)) rmSync(dataDir, { recursive: true, force: true });
  io.err(`  removed ${dataDir}\nReset done: \`dispatcher start\` (npm start) creates everything anew, with a new admin key.\n`);
  return 0;
}

/** Why removing `dir` recursively would be a disaster, or null: a file system root, the home directory, or this directory or one above it. */
function unsafeDirectory(dir: string): string | null {
  if (parse(dir).root === dir) return "a file system root";
  if (dir === resolve(homedir())) return "the home directory";
  for (let d = process.cwd(); ; d = dirname(d)) {
    if (d === dir) return "the current directory or one that holds it";
    if (dirname(d) === d) return null;
  }
}

async function deleteStream(url: string, stream: string): Promise<boolean> {
  let nc;
  try {
    nc = await connect({ servers: url.split(",").map((s) => s.trim()), timeout: 5_000 });
  } catch (err) {
    throw new UnavailableError(`NATS is not reachable at ${url} (${err instanceof Error ? err.message : String(err)}): start it and run reset again`, "NATS_UNAVAILABLE", { cause: err });
  }
  try {
    return await (await jetstreamManager(nc)).streams.delete(stream);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return false;
    throw err;
  } finally {
    await nc.close();
  }
}
