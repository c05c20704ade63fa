// Reading databases for an archive, in Node (no mariadb-dump: the container image has none): one consistent snapshot
// per server (START TRANSACTION WITH CONSISTENT SNAPSHOT, so databases on one server are read at one instant), each
// table streamed in primary-key order as content lines. Rows are never gathered: memory does not grow with the data.
// The same reading, without the lines, checks a restored database against the manifest.
import type { Connection } from "mariadb";
import { openConnection } from "../db/connect.js";
import { quoteIdentifier } from "../db/migrate.js";
import { databaseNameFromUrl, parseDatabaseUrl, redactDatabaseUrl } from "../db/url.js";
import { UnavailableError } from "../errors.js";
import { rowLine, TableDigest, type DatabaseManifest, type DatabaseName, type Manifest, type Row, type TableRecord, type TableSummary } from "./content.js";

export interface DumpSource {
  name: DatabaseName;
  url: string;
}

export interface TableProgress {
  database: DatabaseName;
  table: string;
  rows: number;
  done: boolean;
}

export interface DumpHooks {
  onTable?: (p: TableProgress) => void;
  onManifest?: (m: Manifest) => void;
}

export interface TableInfo {
  name: string;
  columns: string[];
  binary: number[];
  primaryKey: string[];
  /** The table's next AUTO_INCREMENT value, when it has such a column. */
  autoIncrement?: number;
}

/** Column types whose text form is bytes, not characters: carried as base64. */
const BINARY_TYPES = new Set(["binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit", "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection"]);

/** Lines are handed on in pieces of about this many characters rather than one by one. */
const PIECE_CHARS = 64 * 1024;
const PROGRESS_EVERY_ROWS = 10_000;

/**
 * Opens a connection in a read-only REPEATABLE READ transaction whose snapshot is taken now. Sessions run in UTC, as
 * the dispatcher's do, so a TIMESTAMP column would read the same on dump and restore.
 */
export async function openSnapshot(url: string): Promise<Connection> {
  const conn = await openConnection(url, false);
  try {
    await conn.query("SET SESSION time_zone = '+00:00'");
    await conn.query("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    await conn.query("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY");
    return conn;
  } catch (err) {
    await conn.end().catch(() => undefined);
    throw err;
  }
}

/** The base tables of `schema`, sorted by name, with their stored columns and primary key. */
export async function listTables(conn: Connection, schema: string): Promise<TableInfo[]> {
  const tables = (await conn.query("SELECT TABLE_NAME AS name, AUTO_INCREMENT AS autoIncrement FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", [schema])) as {
    name: string;
    autoIncrement: bigint | number | null;
  }[];
  const columns = (await conn.query(
    "SELECT TABLE_NAME AS tableName, COLUMN_NAME AS name, DATA_TYPE AS type, EXTRA AS extra FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
    [schema],
  )) as { tableName: string; name: string; type: string; extra: string }[];
  const keys = (await conn.query("SELECT TABLE_NAME AS tableName, COLUMN_NAME AS name FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX", [schema])) as {
    tableName: string;
    name: string;
  }[];
  return tables.map(({ name, autoIncrement }) => {
    // Generated columns are computed by the server: they are neither dumped nor inserted.
    const stored = columns.filter((c) => c.tableName === name && !/GENERATED/i.test(c.extra));
    return {
      name,
      columns: stored.map((c) => c.name),
      binary: stored.flatMap((c, i) => (BINARY_TYPES.has(c.type.toLowerCase()) ? [i] : [])),
      primaryKey: keys.filter((k) => k.tableName === name).map((k) => k.name),
      ...(autoIncrement !== null && autoIncrement !== undefined ? { autoIncrement: Number(autoIncrement) } : {}),
    };
  });
}

/**
 * Streams a table's rows in primary-key order (the clustered index order: no sort), as the server's text for each
 * value, binary values as base64. The connection pauses while the consumer is busy.
 */
export async function* tableRows(conn: Connection, schema: string, table: TableInfo): AsyncGenerator<Row> {
  const binaryNames = new Set(table.binary.map((i) => table.columns[i]));
  const cols = table.columns.map(quoteIdentifier).join(", ");
  const order = table.primaryKey.length > 0 ? ` ORDER BY ${table.primaryKey.map(quoteIdentifier).join(", ")}` : "";
  const stream = conn.queryStream({
    sql: `SELECT ${cols} FROM ${quoteIdentifier(schema)}.${quoteIdentifier(table.name)}${order}`,
    rowsAsArray: true,
    typeCast: (field) => {
      if (binaryNames.has(field.name())) {
        const b = field.buffer();
        return b === null ? null : b.toString("base64");
      }
      return field.string();
    },
  });
  try {
    for await (const row of stream as AsyncIterable<Row>) yield row;
  } finally {
    stream.destroy();
  }
}

/** The applied migrations recorded in `_prisma_migrations`, in order (none when the table is missing). */
async function appliedMigrations(conn: Connection, schema: string): Promise<{ name: string; checksum: string }[]> {
  const found = (await conn.query("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = '_prisma_migrations'", [schema])) as unknown[];
  if (found.length === 0) return [];
  const rows = (await conn.query(`SELECT migration_name AS name, checksum FROM ${quoteIdentifier(schema)}._prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name`)) as { name: string; checksum: string }[];
  return rows.map((r) => ({ name: r.name, checksum: r.checksum }));
}

async function serverInfo(conn: Connection, url: string): Promise<DatabaseManifest["server"]> {
  const { host, port } = parseDatabaseUrl(url);
  const [v] = (await conn.query("SELECT VERSION() AS version")) as { version: string }[];
  // Where the binary log stood at the snapshot (MariaDB reports it per transaction): the start of a point-in-time
  // recovery from this archive. Empty when log_bin is off.
  const status = (await conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'")) as { Variable_name: string; Value: string }[];
  const file = status.find((s) => s.Variable_name.toLowerCase() === "binlog_snapshot_file")?.Value ?? "";
  const position = Number(status.find((s) => s.Variable_name.toLowerCase() === "binlog_snapshot_position")?.Value ?? 0);
  return { address: `${host}:${port}`, version: v?.version ?? "", ...(file ? { binlog: { file, position } } : {}) };
}

/** Connections grouped by server: databases on one server share one connection, hence one snapshot. */
function serverKey(url: string): string {
  const a = parseDatabaseUrl(url);
  return JSON.stringify([a.host, a.port, a.user, a.password]);
}

/**
 * The content lines of an archive of `sources` (each ending in a newline, several per yielded piece), the manifest
 * last. Snapshots are taken in the order of `sources` before anything is read: provisioning first, then credentials,
 * so that every account read has its credential even when the two databases live on different servers (an account
 * row is written after KM stored its credential).
 */
export async function* dumpContent(sources: readonly DumpSource[], meta: { dispatcherVersion: string; createdAt: Date }, hooks: DumpHooks = {}): AsyncGenerator<string> {
  const onProgress = hooks.onTable ?? (() => undefined);
  const conns = new Map<string, Connection>();
  try {
    for (const s of sources) if (!conns.has(serverKey(s.url))) conns.set(serverKey(s.url), await openSnapshot(s.url));
    const databases: DatabaseManifest[] = [];
    for (const source of sources) {
      const conn = conns.get(serverKey(source.url)) as Connection;
      const schema = databaseNameFromUrl(source.url);
      const exists = (await conn.query("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", [schema])) as unknown[];
      if (exists.length === 0) throw new UnavailableError(`the ${source.name} database ${JSON.stringify(schema)} does not exist at ${redactDatabaseUrl(source.url)}: nothing to back up (is the configuration the one the dispatcher runs with?)`, "BACKUP_SOURCE_MISSING");
      const db: DatabaseManifest = { name: source.name, schema, server: await serverInfo(conn, source.url), migrations: await appliedMigrations(conn, schema), tables: [] };
      for (const table of await listTables(conn, schema)) {
        // The counter is read outside the snapshot (the server keeps it there): at least what the snapshot needs, so a
        // restored table never hands out an id that a row deleted before the backup had.
        const record: TableRecord = { t: "table", database: source.name, name: table.name, columns: table.columns, binary: table.binary, ...(table.autoIncrement ? { autoIncrement: table.autoIncrement } : {}) };
        let piece = `${JSON.stringify(record)}\n`;
        const digest = new TableDigest();
        for await (const row of tableRows(conn, schema, table)) {
          const line = rowLine(row);
          digest.add(line);
          piece += `${line}\n`;
          if (piece.length >= PIECE_CHARS) {
            yield piece;
            piece = "";
          }
          if (digest.rows % PROGRESS_EVERY_ROWS === 0) onProgress({ database: source.name, table: table.name, rows: digest.rows, done: false });
        }
        const summary: TableSummary = { name: table.name, rows: digest.rows, sha256: digest.digest() };
        db.tables.push(summary);
        yield `${piece}${JSON.stringify({ t: "table-end", rows: summary.rows, sha256: summary.sha256 })}\n`;
        onProgress({ database: source.name, table: table.name, rows: summary.rows, done: true });
      }
      databases.push(db);
    }
    const manifest: Manifest = { t: "manifest", format: 1, createdAt: meta.createdAt.toISOString(), finishedAt: new Date().toISOString(), dispatcherVersion: meta.dispatcherVersion, databases };
    hooks.onManifest?.(manifest);
    yield `${JSON.stringify(manifest)}\n`;
  } finally {
    for (const conn of conns.values()) {
      await conn.rollback().catch(() => undefined);
      await conn.end().catch(() => undefined);
    }
  }
}

/** Every table of the database at `url`, counted and hashed as an archive records it (in one snapshot). */
export async function summarizeDatabase(url: string): Promise<TableSummary[]> {
  const conn = await openSnapshot(url);
  try {
    const schema = databaseNameFromUrl(url);
    const out: TableSummary[] = [];
    for (const table of await listTables(conn, schema)) {
      const digest = new TableDigest();
      for await (const row of tableRows(conn, schema, table)) digest.add(rowLine(row));
      out.push({ name: table.name, rows: digest.rows, sha256: digest.digest() });
    }
    return out;
  } finally {
    await conn.rollback().catch(() => undefined);
    await conn.end().catch(() => undefined);
  }
}
