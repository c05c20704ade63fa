// What every command that calls the dispatcher's API shares: the configured client, errors turned into a message
// and an exit code, and plain-text output (tables, times, JSON lines).
import { InvalidArgumentError as CommanderInvalidArgument } from "commander";
import type { DispatcherClients } from "../client/types.js";

/** Where a command writes: stdout for results, stderr for messages. Tests pass their own. */
export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
}

export interface ClientCommandOptions {
  configFile?: string | undefined;
  /** Overrides client.address. */
  address?: string | undefined;
  json?: boolean | undefined;
  io?: CommandIo;
}

export const STDIO: CommandIo = { out: (t) => void process.stdout.write(t), err: (t) => void process.stderr.write(t) };
export const EXIT_USAGE = 2;

/**
 * Connects with the configured address and token, runs `fn` (its number, if any, is the exit code), and turns call
 * failures into a message naming `command` and an exit code.
 */
export async function withClient(command: string, options: ClientCommandOptions, fn: (c: DispatcherClients, io: CommandIo) => Promise<number | void>): Promise<number> {
  const io = options.io ?? STDIO;
  // Loaded on use: a command line that only defines commands (or prints help) never loads the client, and a command
  // loads the generated code of the services it calls only.
  const [{ createLazyDispatcherClients }, { DispatcherError }, { loadConfig }] = await Promise.all([import("../client/lazy.js"), import("../client/errors.js"), import("../config.js")]);
  const config = loadConfig(process.env, options.configFile ?? process.env.DISPATCHER_CONFIG);
  if (!config.client.token) {
    io.err(`dispatcher ${command}: no API key: set DISPATCHER_CLIENT_TOKEN (or client.token in the config file); \`dispatcher admin create-key\` makes one\n`);
    return EXIT_USAGE;
  }
  const clients = createLazyDispatcherClients({ address: options.address ?? config.client.address, token: config.client.token });
  try {
    return (await fn(clients, io)) ?? 0;
  } catch (err) {
    if (err instanceof CommandInputError) {
      io.err(`dispatcher ${command}: ${err.message}\n`);
      return EXIT_USAGE;
    }
    if (!(err instanceof DispatcherError)) throw err;
    const fields = err.fieldViolations.map((v) => `\n  ${v.field}: ${v.description}`).join("");
    io.err(`dispatcher ${command}: ${err.codeName}: ${err.message}${fields}\n`);
    return ["INVALID_ARGUMENT", "UNAUTHENTICATED", "UNAVAILABLE"].includes(err.codeName) ? EXIT_USAGE : 1;
  } finally {
    clients.close();
  }
}

/** A time option's value (ISO 8601: a date, or a date and time). */
export function parseTime(value: string): Date {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new CommanderInvalidArgument(`not a time: "${value}" (e.g. 2026-11-01 or 2026-11-01T12:00:00Z)`);
  return d;
}

export const time = (d: Date | undefined): string => (d ? d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "-");
export const json = (v: unknown): string => `${JSON.stringify(v)}\n`;

/** An amount in cents of the account's currency as units with two decimals: "1234.50". */
export const money = (cents: string | number): string => (Number(cents) / 100).toFixed(2);

/** An hourly price in micro-units of the account's currency: "0.0120 per hour" (at least 4 decimals, no trailing noise). */
export const hourly = (micros: string | number): string => `${(Number(micros) / 1e6).toFixed(6).replace(/(\.\d{4}\d*?)0+$/, "$1")} per hour`;

/** "key:  value" lines, the values aligned one column past the longest key. */
export function fields(lines: [string, string][]): string {
  const width = Math.max(...lines.map(([k]) => k.length)) + 2;
  return lines.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`).join("\n") + "\n";
}

/** Columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}

/** The user a command names: `me` is the caller (the key's user); anything else is a user id as given. */
export async function userIdOf(c: DispatcherClients, value: string): Promise<string> {
  if (value !== "me") return value;
  return (await c.system.whoAmI({})).principalId;
}

/**
 * The account a command names: an account id, or the name of exactly one account the caller may use (the quick
 * start's `local`). A name that matches none or several is refused with what to do. A value shaped like an id (26
 * characters of Crockford base32) is taken as one without a call: the server answers for it (NOT_FOUND as usual).
 */
export async function accountIdOf(c: DispatcherClients, value: string): Promise<string> {
  if (ID_SHAPE.test(value)) return value;
  const accounts: { id: string; name: string }[] = [];
  let pageToken = "";
  do {
    const page = await c.accounts.listAccounts({ pageSize: 1000, pageToken });
    accounts.push(...page.accounts);
    pageToken = page.nextPageToken;
  } while (pageToken);
  const named = accounts.filter((a) => a.name === value);
  if (named.length === 1) return (named[0] as { id: string }).id;
  if (named.length > 1) throw new CommandInputError(`${named.length} accounts are named "${value}" (${named.map((a) => a.id).join(", ")}): give the id`);
  // Not an id either (ids have the shape above): a list filtered by it would just come back empty.
  throw new CommandInputError(`no account you can see is named "${value}" (\`dispatcher accounts list\` shows them)`);
}

/** An optional --account: its id, or "" (every account in scope) when it was not given. */
export const optionalAccountIdOf = (c: DispatcherClients, value: string | undefined): Promise<string> => (value ? accountIdOf(c, value) : Promise.resolve(""));

const ID_SHAPE = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** A command's argument that cannot be resolved; withClient prints it and exits 2. */
export class CommandInputError extends Error {}
