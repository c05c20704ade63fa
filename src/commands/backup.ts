// `dispatcher backup [verify|list|generate-key]` and `dispatcher restore`: encrypted archives of the databases, with
// progress on stderr and results on stdout. Self-contained: the backup code loads only when one of these runs.
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import { progress, setup, type CommandOptions } from "./common.js";

type Register = (program: Command, configFile: () => string | undefined, setExit: (code: number) => void) => void;

const PROGRESS_EVERY_MS = 2_000;

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function count(n: number): string {
  return n.toLocaleString("en-US");
}

/** At most one line per table every few seconds, and one when it is done. */
function tableReporter(): (database: string, table: string, rows: number, done: boolean) => void {
  let last = 0;
  return (database, table, rows, done) => {
    const now = Date.now();
    if (!done && now - last < PROGRESS_EVERY_MS) return;
    last = now;
    progress(`${database}.${table}: ${count(rows)} rows${done ? "" : " …"}`);
  };
}

/** A pass over the archive file, in percent, every few seconds. */
function byteReporter(): (phase: string, read: number, total: number) => void {
  let last = 0;
  return (phase, read, total) => {
    const now = Date.now();
    if (now - last < PROGRESS_EVERY_MS && read < total) return;
    last = now;
    const label = phase === "verify" ? "verifying the archive" : "loading rows";
    progress(`${label}: ${total > 0 ? Math.floor((100 * read) / total) : 100}% (${mb(read)} of ${mb(total)})`);
  };
}

const peakMemory = (): string => mb(process.resourceUsage().maxRSS * 1024);

export async function runBackup(options: CommandOptions & { analytics: boolean; output?: string }): Promise<number> {
  const { config } = await setup(options);
  const { createBackup } = await import("../backup/backup.js");
  const started = Date.now();
  const onTable = tableReporter();
  progress(`backing up provisioning and credentials${options.analytics ? " and analytics" : ""} (one consistent snapshot per server)`);
  const r = await createBackup(config, { analytics: options.analytics, ...(options.output ? { output: options.output } : {}), onTable: (p) => onTable(p.database, p.table, p.rows, p.done) });
  const rows = r.manifest.databases.reduce((n, d) => n + d.tables.reduce((m, t) => m + t.rows, 0), 0);
  progress(`backup written: ${r.path} (${mb(r.bytes)}, ${count(rows)} rows, sha256 ${r.sha256}) in ${((Date.now() - started) / 1000).toFixed(1)} s; peak memory ${peakMemory()}`);
  for (const d of r.deleted) progress(`deleted ${d} (backup.keep = ${config.backup.keep})`);
  process.stdout.write(`${r.path}\n`);
  return 0;
}

export async function runBackupVerify(options: CommandOptions & { file: string }): Promise<number> {
  const { config } = await setup(options);
  const { checkArchive } = await import("../backup/restore.js");
  const onBytes = byteReporter();
  const { manifest } = await checkArchive(config, options.file, (read, total) => onBytes("verify", read, total));
  progress(`${options.file}: every chunk authenticated, every table's count and checksum match its manifest`);
  process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
  return 0;
}

export async function runBackupList(options: CommandOptions): Promise<number> {
  const { config } = await setup(options);
  const { listArchives } = await import("../backup/backup.js");
  const { statSync } = await import("node:fs");
  const archives = listArchives(config.backup.dir);
  if (archives.length === 0) progress(`no archives in ${config.backup.dir}`);
  for (const path of archives) process.stdout.write(`${path}\t${mb(statSync(path).size)}\n`);
  return 0;
}

export async function runRestore(options: CommandOptions & { file: string; replace: boolean }): Promise<number> {
  const { config } = await setup(options);
  const { restoreBackup } = await import("../backup/restore.js");
  const started = Date.now();
  const onBytes = byteReporter();
  const onTable = tableReporter();
  const r = await restoreBackup(config, options.file, { replace: options.replace, onBytes, onTable, onStep: progress });
  progress(`restored ${options.file} (taken ${r.manifest.createdAt}) in ${((Date.now() - started) / 1000).toFixed(1)} s; peak memory ${peakMemory()}`);
  if (r.databases.some((d) => d.name === "credentials")) {
    progress("KM needs the master keys the credentials were wrapped with (encryption.masterKeys): the archive never holds them");
  }
  for (const d of r.databases) process.stdout.write(`${d.name}\t${d.tables} tables\t${d.rows} rows\n`);
  return 0;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new CommanderInvalidArgument("expected a whole number, 1 or more");
  return n;
}

export const addBackupCommands: Register = (program, configFile, setExit) => {
  const backup = program
    .command("backup")
    .description("write an encrypted, compressed archive of the provisioning and credentials databases (and analytics with --analytics) to backup.dir, keeping backup.keep of them")
    .option("--analytics", "include the analytics database", false)
    .option("-o, --output <file>", "write this file instead of a new one in backup.dir (no retention)")
    .action(async (opts: { analytics: boolean; output?: string }) => setExit(await runBackup({ configFile: configFile(), ...opts })));

  backup
    .command("verify")
    .description("read a whole archive with backup.key: every chunk authenticated, every count and checksum checked; prints its manifest")
    .argument("<file>", "the archive")
    .action(async (file: string) => setExit(await runBackupVerify({ configFile: configFile(), file })));

  backup
    .command("list")
    .description("the archives in backup.dir, newest first")
    .action(async () => setExit(await runBackupList({ configFile: configFile() })));

  backup
    .command("generate-key")
    .description("print a new random 32-byte backup key as <version>:<base64> (for backup.key)")
    .option("-k, --key-version <n>", "version to label the key with", positiveInt, 1)
    .action(async (opts: { keyVersion: number }) => {
      const { generateKeyText } = await import("../km/keys.js");
      process.stdout.write(`${generateKeyText(opts.keyVersion)}\n`);
      progress("a new backup key (shown once): keep it in a secret store apart from the archives, never beside them; add new versions to backup.key to rotate (the newest encrypts)");
      setExit(0);
    });

  program
    .command("restore")
    .description("load an archive into empty databases (those the configuration names) and check them against it; the archive is verified in full before anything is written")
    .argument("<file>", "the archive")
    .option("--replace", "drop target databases that already hold tables", false)
    .action(async (file: string, opts: { replace: boolean }) => setExit(await runRestore({ configFile: configFile(), file, replace: opts.replace })));
};
