// The shape of a MySQL schema (tables, columns, types, nullability, defaults, indexes, foreign keys), derived two ways:
// from a Prisma schema (parsed by Prisma's own WASM schema parser, then Prisma's MySQL mapping and naming rules) and
// from a live database's information_schema. diffShapes lists every disagreement; test/db/schema-drift.test.ts uses it
// to fail whenever a schema.prisma and its hand-written migrations disagree.
import { get_dmmf } from "@prisma/prisma-schema-wasm";
import type { Connection } from "mariadb";

export interface ColumnShape {
  type: string;
  nullable: boolean;
  /** Canonical DEFAULT expression as MariaDB reports it, null for none; undefined when it cannot be compared. */
  default: string | null | undefined;
  autoIncrement: boolean;
}
export interface IndexShape {
  kind: "primary" | "unique" | "index" | "fulltext";
  /** Column names, with "(prefix length)" and " DESC" where they apply. */
  columns: string[];
}
export interface ForeignKeyShape {
  columns: string[];
  referencedTable: string;
  referencedColumns: string[];
  onDelete: string;
  onUpdate: string;
}
export interface TableShape {
  collation: string;
  columns: Record<string, ColumnShape>;
  indexes: Record<string, IndexShape>;
  foreignKeys: Record<string, ForeignKeyShape>;
}
export type SchemaShape = Record<string, TableShape>;

// ---- the Prisma side --------------------------------------------------------------------------------------------

interface DmmfField {
  name: string;
  dbName?: string | null;
  kind: "scalar" | "object" | "enum" | "unsupported";
  isList: boolean;
  isRequired: boolean;
  isId: boolean;
  isUnique: boolean;
  hasDefaultValue: boolean;
  type: string;
  nativeType?: [string, string[]] | null;
  default?: unknown;
  isUpdatedAt: boolean;
  relationFromFields?: string[];
  relationToFields?: string[];
  relationOnDelete?: string;
  relationOnUpdate?: string;
}
interface DmmfModel {
  name: string;
  dbName: string | null;
  fields: DmmfField[];
  primaryKey: { name: string | null; fields: string[] } | null;
}
interface DmmfIndex {
  model: string;
  type: "id" | "unique" | "normal" | "fulltext";
  dbName?: string;
  fields: { name: string; sortOrder?: "asc" | "desc"; length?: number }[];
}
interface Dmmf {
  enums: { name: string; values: { name: string; dbName: string | null }[] }[];
  models: DmmfModel[];
  indexes: DmmfIndex[];
}

const MAX_IDENTIFIER = 64;
/** Collation Prisma's MySQL DDL gives every table. */
export const PRISMA_TABLE_COLLATION = "utf8mb4_unicode_ci";

/** Parses a Prisma schema with Prisma's WASM parser (throws Prisma's validation errors). */
export function parsePrismaSchema(schema: string): Dmmf {
  const out = JSON.parse(get_dmmf(JSON.stringify({ prismaSchema: [["schema.prisma", schema]], noColor: true }))) as { datamodel: Dmmf };
  return out.datamodel;
}

/** Prisma's default constraint name: <table>_<columns>_<suffix>, cut to fit MySQL's 64 characters. */
export function prismaConstraintName(table: string, columns: string[], suffix: "key" | "idx" | "fkey"): string {
  const limit = MAX_IDENTIFIER - suffix.length - 1;
  let base = `${table}_${columns.join("_")}`;
  if (base.length >= limit) base = base.slice(0, limit);
  return `${base}_${suffix}`;
}

/** The MySQL schema that Prisma's migrate would create for this Prisma schema. */
export function expectedShape(schema: string): SchemaShape {
  const dm = parsePrismaSchema(schema);
  const enums = new Map(dm.enums.map((e) => [e.name, e.values.map((v) => v.dbName ?? v.name)]));
  const models = new Map(dm.models.map((m) => [m.name, m]));
  const tableOf = (m: DmmfModel): string => m.dbName ?? m.name;
  const columnOf = (m: DmmfModel, field: string): string => {
    const f = m.fields.find((x) => x.name === field);
    return f?.dbName ?? field;
  };
  const shape: SchemaShape = {};
  for (const model of dm.models) {
    const table: TableShape = { collation: PRISMA_TABLE_COLLATION, columns: {}, indexes: {}, foreignKeys: {} };
    shape[tableOf(model)] = table;
    for (const f of model.fields) {
      if (f.kind === "object") continue;
      table.columns[f.dbName ?? f.name] = expectedColumn(f, enums);
    }
    const pk = model.primaryKey?.fields ?? model.fields.filter((f) => f.isId).map((f) => f.name);
    if (pk.length > 0) table.indexes.PRIMARY = { kind: "primary", columns: pk.map((c) => columnOf(model, c)) };
    for (const ix of dm.indexes.filter((i) => i.model === model.name && i.type !== "id")) {
      const columns = ix.fields.map((c) => columnOf(model, c.name));
      const name = ix.dbName ?? prismaConstraintName(tableOf(model), columns, ix.type === "unique" ? "key" : "idx");
      table.indexes[name] = {
        kind: ix.type === "unique" ? "unique" : ix.type === "fulltext" ? "fulltext" : "index",
        columns: ix.fields.map((c) => `${columnOf(model, c.name)}${c.length ? `(${c.length})` : ""}${c.sortOrder === "desc" ? " DESC" : ""}`),
      };
    }
    for (const f of model.fields) {
      if (f.kind !== "object" || !f.relationFromFields?.length) continue;
      const target = models.get(f.type);
      if (!target) continue;
      const columns = f.relationFromFields.map((c) => columnOf(model, c));
      const allRequired = f.relationFromFields.every((c) => model.fields.find((x) => x.name === c)?.isRequired);
      table.foreignKeys[prismaConstraintName(tableOf(model), columns, "fkey")] = {
        columns,
        referencedTable: tableOf(target),
        referencedColumns: (f.relationToFields ?? []).map((c) => columnOf(target, c)),
        onDelete: referentialAction(f.relationOnDelete ?? (allRequired ? "Restrict" : "SetNull")),
        onUpdate: referentialAction(f.relationOnUpdate ?? "Cascade"),
      };
    }
  }
  return shape;
}

function referentialAction(action: string): string {
  return ({ Cascade: "CASCADE", Restrict: "RESTRICT", NoAction: "NO ACTION", SetNull: "SET NULL", SetDefault: "SET DEFAULT" } as Record<string, string>)[action] ?? action;
}

/** Prisma's MySQL type for a scalar: its default mapping or the @db native type, in information_schema's spelling. */
function expectedType(f: DmmfField, enums: Map<string, string[]>): string {
  if (f.kind === "enum") return `enum(${(enums.get(f.type) ?? []).map(sqlString).join(",")})`;
  const [native, args = []] = f.nativeType ?? [];
  if (!native) {
    const defaults: Record<string, string> = { String: "varchar(191)", Boolean: "tinyint(1)", Int: "int", BigInt: "bigint", Float: "double", Decimal: "decimal(65,30)", DateTime: "datetime(3)", Json: "json", Bytes: "longblob" };
    return defaults[f.type] ?? `unknown ${f.type}`;
  }
  const a = args.join(",");
  const ints: Record<string, string> = { Int: "int", UnsignedInt: "int unsigned", SmallInt: "smallint", UnsignedSmallInt: "smallint unsigned", MediumInt: "mediumint", UnsignedMediumInt: "mediumint unsigned", TinyInt: f.type === "Boolean" ? "tinyint(1)" : "tinyint", UnsignedTinyInt: "tinyint unsigned", BigInt: "bigint", UnsignedBigInt: "bigint unsigned", Year: "year" };
  if (ints[native]) return ints[native];
  if (native === "DateTime" || native === "Timestamp" || native === "Time") return normaliseType(`${native.toLowerCase()}(${a || "0"})`);
  const plain: Record<string, string> = { Text: "text", TinyText: "tinytext", MediumText: "mediumtext", LongText: "longtext", Double: "double", Float: "float", Date: "date", Json: "json", LongBlob: "longblob", TinyBlob: "tinyblob", Blob: "blob", MediumBlob: "mediumblob" };
  if (plain[native]) return plain[native];
  return `${native.toLowerCase()}(${a})`; // VarChar, Char, Decimal, Bit, Binary, VarBinary
}

function expectedColumn(f: DmmfField, enums: Map<string, string[]>): ColumnShape {
  const type = expectedType(f, enums);
  const d = f.default as { name?: string; args?: unknown[] } | string | number | boolean | undefined;
  let dflt: string | null | undefined = null;
  let autoIncrement = false;
  if (d !== undefined && typeof d === "object" && d !== null && "name" in d) {
    if (d.name === "autoincrement") autoIncrement = true;
    else if (d.name === "now") dflt = `current_timestamp(${/\((\d+)\)/.exec(type)?.[1] ?? ""})`;
    else if (d.name === "dbgenerated") dflt = undefined;
    // uuid(), cuid(), ulid(), nanoid() are made by the client: no database default.
  } else if (typeof d === "string") {
    dflt = f.type === "Json" ? undefined : sqlString(d);
  } else if (typeof d === "boolean") {
    dflt = d ? "1" : "0";
  } else if (typeof d === "number") {
    dflt = String(d);
  }
  return { type, nullable: !f.isRequired, default: dflt, autoIncrement };
}

function sqlString(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`;
}

// ---- the database side ------------------------------------------------------------------------------------------

/** information_schema spelling → the canonical one used above (no integer display widths except tinyint(1)). */
export function normaliseType(columnType: string): string {
  // Only the keyword is lowercased: enum values keep their case.
  const lowered = columnType.replace(/^[a-z ]+/i, (k) => k.toLowerCase());
  return lowered
    .replace(/^(tinyint|smallint|mediumint|int|bigint|year)\((\d+)\)/, (all, t: string, w: string) => (t === "tinyint" && w === "1" ? all : t))
    .replace(/^(datetime|timestamp|time)\(0\)/, "$1")
    .replace(/,\s+(?=\d|')/g, ",");
}

/** The shape of every table in `database` except Prisma's bookkeeping table. */
export async function actualShape(conn: Connection, database: string): Promise<SchemaShape> {
  const q = async <T>(sql: string): Promise<T[]> => (await conn.query(sql, [database])) as T[];
  const tables = await q<{ name: string; collation: string }>("SELECT TABLE_NAME AS name, TABLE_COLLATION AS collation FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> '_prisma_migrations'");
  const shape: SchemaShape = {};
  for (const t of tables) shape[t.name] = { collation: t.collation, columns: {}, indexes: {}, foreignKeys: {} };

  const checks = await q<{ table: string; clause: string }>("SELECT TABLE_NAME AS `table`, CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?");
  const jsonColumns = new Set(checks.map((c) => { const m = /^json_valid\(`([^`]+)`\)$/.exec(c.clause); return m ? `${c.table}.${m[1]}` : ""; }));
  const columns = await q<{ table: string; name: string; type: string; nullable: string; dflt: string | null; extra: string }>(
    "SELECT TABLE_NAME AS `table`, COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE AS nullable, COLUMN_DEFAULT AS dflt, EXTRA AS extra FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
  );
  for (const c of columns) {
    const table = shape[c.table];
    if (!table) continue;
    // MariaDB stores JSON as LONGTEXT plus a json_valid() check; MySQL reports json itself.
    const type = c.type.toLowerCase() === "longtext" && jsonColumns.has(`${c.table}.${c.name}`) ? "json" : normaliseType(c.type);
    table.columns[c.name] = { type, nullable: c.nullable === "YES", default: c.dflt === null || c.dflt === "NULL" ? null : c.dflt.toLowerCase().startsWith("current_timestamp") ? c.dflt.toLowerCase() : c.dflt, autoIncrement: /auto_increment/i.test(c.extra) };
  }

  const stats = await q<{ table: string; name: string; nonUnique: number | bigint; column: string; subPart: number | bigint | null; collation: string | null; type: string }>(
    "SELECT TABLE_NAME AS `table`, INDEX_NAME AS name, NON_UNIQUE AS nonUnique, COLUMN_NAME AS `column`, SUB_PART AS subPart, COLLATION AS collation, INDEX_TYPE AS type FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
  );
  for (const s of stats) {
    const table = shape[s.table];
    if (!table) continue;
    const kind = s.name === "PRIMARY" ? "primary" : s.type === "FULLTEXT" ? "fulltext" : Number(s.nonUnique) === 0 ? "unique" : "index";
    const ix = (table.indexes[s.name] ??= { kind, columns: [] });
    ix.columns.push(`${s.column}${s.subPart !== null ? `(${Number(s.subPart)})` : ""}${s.collation === "D" ? " DESC" : ""}`);
  }

  const fks = await q<{ table: string; name: string; column: string; refTable: string; refColumn: string; onDelete: string; onUpdate: string }>(
    `SELECT k.TABLE_NAME AS \`table\`, k.CONSTRAINT_NAME AS name, k.COLUMN_NAME AS \`column\`, k.REFERENCED_TABLE_NAME AS refTable,
            k.REFERENCED_COLUMN_NAME AS refColumn, r.DELETE_RULE AS onDelete, r.UPDATE_RULE AS onUpdate
       FROM information_schema.KEY_COLUMN_USAGE k
       JOIN information_schema.REFERENTIAL_CONSTRAINTS r ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME
      WHERE k.TABLE_SCHEMA = ? ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION`,
  );
  for (const f of fks) {
    const table = shape[f.table];
    if (!table) continue;
    const fk = (table.foreignKeys[f.name] ??= { columns: [], referencedTable: f.refTable, referencedColumns: [], onDelete: f.onDelete, onUpdate: f.onUpdate });
    fk.columns.push(f.column);
    fk.referencedColumns.push(f.refColumn);
  }
  return shape;
}

// ---- the comparison ---------------------------------------------------------------------------------------------

/** Every difference between what the Prisma schema implies and what the database has, one line each. */
export function diffShapes(expected: SchemaShape, actual: SchemaShape): string[] {
  const out: string[] = [];
  for (const name of union(expected, actual)) {
    const e = expected[name];
    const a = actual[name];
    if (!a) { out.push(`table ${name}: in the Prisma schema, missing from the database`); continue; }
    if (!e) { out.push(`table ${name}: in the database, not in the Prisma schema`); continue; }
    if (e.collation !== a.collation) out.push(`table ${name}: collation ${a.collation}, expected ${e.collation}`);
    for (const col of union(e.columns, a.columns)) {
      const ec = e.columns[col];
      const ac = a.columns[col];
      if (!ac) { out.push(`column ${name}.${col}: in the Prisma schema, missing from the database`); continue; }
      if (!ec) { out.push(`column ${name}.${col}: in the database, not in the Prisma schema`); continue; }
      if (ec.type !== ac.type) out.push(`column ${name}.${col}: type ${ac.type}, expected ${ec.type}`);
      if (ec.nullable !== ac.nullable) out.push(`column ${name}.${col}: ${ac.nullable ? "NULL" : "NOT NULL"}, expected ${ec.nullable ? "NULL" : "NOT NULL"}`);
      if (ec.default !== undefined && ec.default !== ac.default) out.push(`column ${name}.${col}: default ${ac.default ?? "none"}, expected ${ec.default ?? "none"}`);
      if (ec.autoIncrement !== ac.autoIncrement) out.push(`column ${name}.${col}: ${ac.autoIncrement ? "" : "not "}AUTO_INCREMENT, expected ${ec.autoIncrement ? "" : "not "}AUTO_INCREMENT`);
    }
    for (const ix of union(e.indexes, a.indexes)) {
      const ei = e.indexes[ix];
      const ai = a.indexes[ix];
      // MySQL gives a foreign key without a usable index one of its own, named after the constraint.
      if (!ei && ai && a.foreignKeys[ix]) continue;
      if (!ai) { out.push(`index ${name}.${ix}: ${describeIndex(ei)} in the Prisma schema, missing from the database`); continue; }
      if (!ei) { out.push(`index ${name}.${ix}: ${describeIndex(ai)} in the database, not in the Prisma schema`); continue; }
      if (describeIndex(ei) !== describeIndex(ai)) out.push(`index ${name}.${ix}: ${describeIndex(ai)}, expected ${describeIndex(ei)}`);
    }
    for (const fk of union(e.foreignKeys, a.foreignKeys)) {
      const ef = e.foreignKeys[fk];
      const af = a.foreignKeys[fk];
      if (!af) { out.push(`foreign key ${name}.${fk}: ${describeFk(ef)} in the Prisma schema, missing from the database`); continue; }
      if (!ef) { out.push(`foreign key ${name}.${fk}: ${describeFk(af)} in the database, not in the Prisma schema`); continue; }
      if (describeFk(ef) !== describeFk(af)) out.push(`foreign key ${name}.${fk}: ${describeFk(af)}, expected ${describeFk(ef)}`);
    }
  }
  return out;
}

function union<T>(a: Record<string, T>, b: Record<string, T>): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
}

function describeIndex(ix: IndexShape | undefined): string {
  return ix ? `${ix.kind.toUpperCase()} (${ix.columns.join(", ")})` : "?";
}

function describeFk(fk: ForeignKeyShape | undefined): string {
  return fk ? `(${fk.columns.join(", ")}) → ${fk.referencedTable}(${fk.referencedColumns.join(", ")}) ON DELETE ${fk.onDelete} ON UPDATE ${fk.onUpdate}` : "?";
}
