// Private MariaDB servers for tests and scripts that must not touch the shared one: restores into an empty server,
// SIGKILLs, and the nodes of a Galera cluster (test/support/galera.ts). Each server has its own data directory (made
// by mariadb-install-db once per process, then copied), a free port, a socket in its directory, and root without a
// password on 127.0.0.1. Run as root, the servers run as the `mysql` user, as a packaged server does (Galera's rsync
// state transfer refuses a root-owned data directory); otherwise as the current user.
import { execFile } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { openConnection } from "../../src/db/connect.js";
import { Daemon, GiveUp, poll } from "./daemon.js";
import { freePort } from "./net.js";

const execFileAsync = promisify(execFile);
/** Longest a set-up command may take (mariadb-install-db under a heavily loaded machine takes ~20 s). */
const SETUP_TIMEOUT_MS = 180_000;

/**
 * Runs a set-up command, bounded: a command that neither ends nor fails within SETUP_TIMEOUT_MS (a pipe held open by
 * a stray grandchild, a stalled disk) fails the set-up with its name instead of hanging the test until its timeout.
 */
async function run(file: string, args: string[]): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${file} ${args.slice(0, 2).join(" ")} did not finish within ${SETUP_TIMEOUT_MS / 1000} s`)), SETUP_TIMEOUT_MS);
  });
  try {
    await Promise.race([execFileAsync(file, args, { timeout: SETUP_TIMEOUT_MS, killSignal: "SIGKILL" }), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export const MARIADBD = "/usr/sbin/mariadbd";
export const INSTALL_DB = "/usr/bin/mariadb-install-db";

/** Small InnoDB files: a fresh data directory is ~25 MB instead of ~115 MB, and starts faster. */
const SMALL_INNODB = ["--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M"];

/** Whom the server runs as: `mysql` when we are root (mariadbd refuses root unless told), else ourselves. */
export function serverAccount(): { user?: string; uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const line = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("mysql:"));
  if (!line) return { user: "root" };
  const [, , uid, gid] = line.split(":");
  return { user: "mysql", uid: Number(uid), gid: Number(gid) };
}

/** A temporary directory the server account owns (short: a socket path must stay under 108 bytes). */
export function serverDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `mdb-${label.replace(/[^A-Za-z0-9]/g, "").slice(0, 20)}-`));
  const acct = serverAccount();
  if (acct.uid !== undefined && acct.gid !== undefined) chownSync(dir, acct.uid, acct.gid);
  return dir;
}

let template: Promise<string> | undefined;
let running = 0;

/**
 * Template directories of processes that are gone: a test runner may end its workers without their exit handlers
 * running, so each process clears its predecessors' leftovers (the name carries the owner's pid).
 */
function removeStaleTemplates(): void {
  for (const name of readdirSync(tmpdir())) {
    const pid = Number(/^mdb-template(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch {
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  }
}

/** A fresh data directory at `dataDir`: a copy of one made by mariadb-install-db once per process. */
export async function installDataDir(dataDir: string): Promise<void> {
  if (!existsSync(MARIADBD) || !existsSync(INSTALL_DB)) throw new Error(`a private MariaDB needs ${MARIADBD} and ${INSTALL_DB} (apt-get install -y mariadb-server)`);
  template ??= (async () => {
    removeStaleTemplates();
    const dir = serverDir(`template${process.pid}`);
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    const acct = serverAccount();
    await run(INSTALL_DB, ["--no-defaults", `--datadir=${join(dir, "data")}`, "--auth-root-authentication-method=normal", "--skip-test-db", ...(acct.user ? [`--user=${acct.user}`] : []), ...SMALL_INNODB]).catch((err: unknown) => {
      throw new Error(`mariadb-install-db failed: ${err instanceof Error ? err.message : String(err)}`);
    });
    return join(dir, "data");
  })();
  // cp -a keeps the owner, so a copy made as root still belongs to the server account.
  await run("cp", ["-a", await template, dataDir]);
}

export interface MariadbOptions {
  /** Names the temporary directory. */
  label?: string;
  /** More mariadbd options, e.g. ["--max-connections=500"]; later ones win. */
  args?: readonly string[];
  /** How long to wait for the server to accept connections (default 30 s). */
  readyTimeoutMs?: number;
  /** The SQL port (default: a free one). */
  port?: number;
  /** Wait until it answers (default true); a Galera joiner answers only once its state transfer is done. */
  wait?: boolean;
  /** Options for the first start only (not for restarts), e.g. --wsrep-new-cluster. */
  once?: readonly string[];
}

/** One private mariadbd: its port, socket and data directory, and what a test does to it. */
export class PrivateMariadb {
  daemon: Daemon;
  #stopped = false;

  private constructor(
    readonly name: string,
    readonly dir: string,
    readonly port: number,
    private readonly argsOf: (extra: readonly string[]) => string[],
    daemon: Daemon,
  ) {
    this.daemon = daemon;
  }

  get dataDir(): string {
    return join(this.dir, "data");
  }

  get socket(): string {
    return join(this.dir, "mysqld.sock");
  }

  get logFile(): string {
    return join(this.dir, "mariadbd.log");
  }

  get running(): boolean {
    return this.daemon.running;
  }

  /** mysql://root@127.0.0.1:<port>/<database>; no database names none (server-level connections). */
  url(database = ""): string {
    return `mysql://root@127.0.0.1:${this.port}/${database}`;
  }

  /**
   * Starts a mariadbd on a fresh data directory. `args` is how its callers (the Galera harness) add options; the
   * base options are the port, the socket, 127.0.0.1 only, small InnoDB files and room for 300 connections.
   */
  static async start(options: MariadbOptions & { argsFor?: (port: number, dir: string) => string[] } = {}): Promise<PrivateMariadb> {
    const name = options.label ?? "mariadb";
    const dir = serverDir(name);
    const port = options.port ?? (await freePort());
    await installDataDir(join(dir, "data"));
    const acct = serverAccount();
    const argsOf = (extra: readonly string[]): string[] => [
      "--no-defaults",
      `--datadir=${join(dir, "data")}`,
      `--port=${port}`,
      "--bind-address=127.0.0.1",
      `--socket=${join(dir, "mysqld.sock")}`,
      `--pid-file=${join(dir, "mysqld.pid")}`,
      ...(acct.user ? [`--user=${acct.user}`] : []),
      ...SMALL_INNODB,
      "--max-connections=300",
      ...(options.argsFor?.(port, dir) ?? []),
      ...(options.args ?? []),
      ...extra,
    ];
    const server = new PrivateMariadb(name, dir, port, argsOf, new Daemon(name, MARIADBD, argsOf(options.once ?? []), join(dir, "mariadbd.log")));
    running++;
    if (options.wait !== false) await server.waitReady(options.readyTimeoutMs ?? 30_000);
    return server;
  }

  /** Resolves once the server answers `SELECT 1`; fails fast, with its log, if the process exits. */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    await poll(
      async () => {
        if (!this.daemon.running) throw new GiveUp(`${this.name} exited`);
        const conn = await openConnection(this.url(), false);
        await conn.query("SELECT 1").finally(() => conn.end().catch(() => undefined));
        return true;
      },
      timeoutMs,
      `${this.name} on port ${this.port}`,
    ).catch((err: unknown) => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- ${this.logFile}\n${this.daemon.tail()}`);
    });
  }

  /** Runs statements on a connection of their own (no database selected); returns the last one's rows. */
  async query<T = Record<string, unknown>>(...statements: string[]): Promise<T[]> {
    const conn = await openConnection(this.url(), false);
    try {
      let rows: unknown = [];
      for (const s of statements) rows = await conn.query(s);
      return (Array.isArray(rows) ? rows : []) as T[];
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  /** SIGKILL: no shutdown, InnoDB recovers at the next start. */
  async kill(): Promise<void> {
    await this.daemon.kill();
  }

  /**
   * Starts the server again on the same port and data directory (after kill or stop); `extra` adds options for this
   * start only. Waits until it answers unless `readyTimeoutMs` is 0.
   */
  async restart(extra: readonly string[] = [], readyTimeoutMs = 30_000): Promise<void> {
    if (this.daemon.running) throw new Error(`${this.name} is still running`);
    this.daemon = new Daemon(this.name, MARIADBD, this.argsOf(extra), this.logFile);
    if (readyTimeoutMs > 0) await this.waitReady(readyTimeoutMs);
  }

  /** A clean shutdown (SIGTERM), then the directory is removed (and the template with the process's last server). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.daemon.stop("SIGTERM", 20_000);
    rmSync(this.dir, { recursive: true, force: true });
    if (--running === 0 && template) {
      const dir = await template.catch(() => undefined);
      template = undefined;
      if (dir) rmSync(join(dir, ".."), { recursive: true, force: true });
    }
  }
}

/** A private mariadbd on a free port with an empty data directory (root, no password, on 127.0.0.1). */
export function startPrivateMariadb(options: MariadbOptions = {}): Promise<PrivateMariadb> {
  return PrivateMariadb.start(options);
}
