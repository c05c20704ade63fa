// What an archive holds once decrypted and decompressed: JSON lines. Per table a `table` record (columns, which are
// binary), one JSON array per row (every value as the server's text for it, binary ones base64, NULL as null), and a
// `table-end` record with the row count and the SHA-256 of the row lines; last, the manifest. The reader checks every
// count and checksum against the records and the manifest as it goes.
import { createHash, type Hash } from "node:crypto";
import { ArchiveError } from "./archive.js";

export type DatabaseName = "provisioning" | "analytics" | "credentials";

/** A row: each column's text as the server gives it (binary columns base64), or null. */
export type Row = (string | null)[];

export interface TableRecord {
  t: "table";
  database: DatabaseName;
  name: string;
  columns: string[];
  /** Indexes of the columns whose values are base64 of binary data. */
  binary: number[];
  /** The table's next AUTO_INCREMENT value at the backup, when it has such a column. */
  autoIncrement?: number;
}

export interface TableEndRecord {
  t: "table-end";
  rows: number;
  sha256: string;
}

export interface TableSummary {
  name: string;
  rows: number;
  sha256: string;
}

export interface DatabaseManifest {
  name: DatabaseName;
  /** The database's name on the server it was read from. */
  schema: string;
  server: { address: string; version: string; binlog?: { file: string; position: number } };
  /** Applied migrations (name and checksum, as `_prisma_migrations` records them), in order. */
  migrations: { name: string; checksum: string }[];
  tables: TableSummary[];
}

export interface Manifest {
  t: "manifest";
  format: 1;
  createdAt: string;
  finishedAt: string;
  dispatcherVersion: string;
  databases: DatabaseManifest[];
}

/** One row's line, without the newline: the unit the table checksum covers (with a newline after each). */
export function rowLine(row: Row): string {
  return JSON.stringify(row);
}

/** Counts a table's rows and hashes their lines, the same way on dump, read and check. */
export class TableDigest {
  rows = 0;
  readonly #hash: Hash = createHash("sha256");

  add(line: string): void {
    this.#hash.update(line);
    this.#hash.update("\n");
    this.rows++;
  }

  digest(): string {
    return this.#hash.digest("hex");
  }
}

export type ContentEvent = { kind: "table"; table: TableRecord } | { kind: "row"; row: Row } | { kind: "table-end"; table: TableRecord; summary: TableSummary } | { kind: "manifest"; manifest: Manifest };

const invalid = (path: string, what: string): ArchiveError => new ArchiveError(`${path}: the archive's content is not valid (${what}); it was not written by this dispatcher's backup`, "BACKUP_CONTENT_INVALID");

/**
 * The events of an archive's content lines, checked: rows only inside a table, each table's count and checksum equal
 * to its table-end record, the manifest last and listing exactly the tables seen. Throws an ArchiveError otherwise.
 */
export async function* contentEvents(lines: AsyncIterable<string>, path: string): AsyncGenerator<ContentEvent> {
  let table: TableRecord | undefined;
  let digest: TableDigest | undefined;
  let manifest: Manifest | undefined;
  const seen = new Map<string, TableSummary>();
  for await (const line of lines) {
    if (manifest) throw invalid(path, "content after the manifest");
    if (line.startsWith("[")) {
      if (!table || !digest) throw invalid(path, "a row outside a table");
      const row = parse<Row>(line, path);
      if (!Array.isArray(row) || row.length !== table.columns.length) throw invalid(path, `a row of ${table.database}.${table.name} with ${Array.isArray(row) ? row.length : "no"} values for ${table.columns.length} columns`);
      digest.add(line);
      yield { kind: "row", row };
      continue;
    }
    const record = parse<TableRecord | TableEndRecord | Manifest>(line, path);
    if (record.t === "table") {
      if (table) throw invalid(path, `table ${record.name} begins inside ${table.name}`);
      if (!Array.isArray(record.columns) || !Array.isArray(record.binary)) throw invalid(path, `table ${record.name} has no column list`);
      table = record;
      digest = new TableDigest();
      yield { kind: "table", table };
    } else if (record.t === "table-end") {
      if (!table || !digest) throw invalid(path, "a table end outside a table");
      const summary = { name: table.name, rows: digest.rows, sha256: digest.digest() };
      if (summary.rows !== record.rows || summary.sha256 !== record.sha256) throw invalid(path, `${table.database}.${table.name} holds ${summary.rows} rows (sha256 ${summary.sha256}) but records ${record.rows} (sha256 ${record.sha256})`);
      seen.set(`${table.database}.${table.name}`, summary);
      const ended = table;
      table = undefined;
      digest = undefined;
      yield { kind: "table-end", table: ended, summary };
    } else if (record.t === "manifest") {
      if (table) throw invalid(path, `the manifest inside table ${table.name}`);
      checkManifest(record, seen, path);
      manifest = record;
      yield { kind: "manifest", manifest };
    } else {
      throw invalid(path, `an unknown record ${JSON.stringify((record as { t?: unknown }).t)}`);
    }
  }
  if (!manifest) throw invalid(path, "no manifest at the end");
}

function checkManifest(manifest: Manifest, seen: Map<string, TableSummary>, path: string): void {
  if (manifest.format !== 1 || !Array.isArray(manifest.databases)) throw invalid(path, "a manifest of an unknown format");
  const listed = new Set<string>();
  for (const db of manifest.databases) {
    for (const t of db.tables) {
      const key = `${db.name}.${t.name}`;
      const s = seen.get(key);
      if (!s || s.rows !== t.rows || s.sha256 !== t.sha256) throw invalid(path, `the manifest's ${key} (${t.rows} rows) is not the table the archive holds`);
      listed.add(key);
    }
  }
  for (const key of seen.keys()) if (!listed.has(key)) throw invalid(path, `table ${key} is missing from the manifest`);
}

function parse<T>(line: string, path: string): T {
  try {
    return JSON.parse(line) as T;
  } catch {
    throw invalid(path, "a line that is not JSON");
  }
}

/** Splits a byte stream into lines (UTF-8), without the newline; a last line without one counts too. */
export async function* splitLines(source: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let rest = "";
  for await (const chunk of source) {
    rest += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    let nl = rest.indexOf("\n");
    let from = 0;
    while (nl !== -1) {
      yield rest.slice(from, nl);
      from = nl + 1;
      nl = rest.indexOf("\n", from);
    }
    rest = rest.slice(from);
  }
  rest += decoder.decode();
  if (rest !== "") yield rest;
}
