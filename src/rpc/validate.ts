// Request validation for handlers: each helper returns the clean value or throws InvalidArgumentError with field
// violations. `Violations` collects several bad fields so that one reply lists them all.
import { createHash } from "node:crypto";
import type { Page } from "../db/page.js";
import { InvalidArgumentError, type FieldViolation } from "../errors.js";

export interface StringRules {
  /** Largest length in characters (default 1024). */
  max?: number;
  /** Smallest length (default 1: required strings may not be empty). */
  min?: number;
  pattern?: RegExp;
  /** Said when the pattern does not match, e.g. "letters, digits and - only". */
  patternHint?: string;
}

export interface PageRules {
  /** Used when page_size is 0 (default 50). */
  default?: number;
  /** Larger sizes are lowered to this (AIP-158; default 1000). */
  max?: number;
}

/** Collects violations; `check()` throws once with every one of them. */
export class Violations {
  readonly list: FieldViolation[] = [];

  add(field: string, description: string): void {
    this.list.push({ field, description });
  }

  /** A required string within rules; returns it unchanged, or "" after recording a violation. */
  string(field: string, value: string | undefined, rules: StringRules = {}): string {
    const { max = 1024, min = 1, pattern, patternHint } = rules;
    const s = value ?? "";
    if (s.length < min) this.add(field, min === 1 ? "is required" : `must be at least ${min} characters`);
    else if (s.length > max) this.add(field, `must be at most ${max} characters`);
    else if (pattern && !pattern.test(s)) this.add(field, patternHint ?? `must match ${pattern.source}`);
    else return s;
    return "";
  }

  /** An optional string: "" passes, anything else must satisfy the rules. */
  optionalString(field: string, value: string | undefined, rules: StringRules = {}): string {
    return value ? this.string(field, value, { ...rules, min: 1 }) : "";
  }

  /**
   * A proto enum value mapped to its domain string. *_UNSPECIFIED (0) and values missing from `mapping` are
   * violations; returns undefined then.
   */
  enumValue<T extends string>(field: string, value: number | undefined, mapping: Readonly<Partial<Record<number, T>>>): T | undefined {
    const mapped = value ? mapping[value] : undefined;
    if (mapped === undefined) this.add(field, value ? `unknown value ${value}` : "must be specified");
    return mapped;
  }

  /** Like enumValue, but 0 (UNSPECIFIED) means "no filter" and returns undefined without a violation. */
  optionalEnum<T extends string>(field: string, value: number | undefined, mapping: Readonly<Partial<Record<number, T>>>): T | undefined {
    return value ? this.enumValue(field, value, mapping) : undefined;
  }

  /** An integer within [min, max]. */
  int(field: string, value: number | undefined, min: number, max: number): number {
    const n = value ?? 0;
    if (!Number.isInteger(n) || n < min || n > max) this.add(field, `must be an integer from ${min} to ${max}`);
    return n;
  }

  /** page_size: 0 → default, negative → violation, above max → max. */
  pageSize(field: string, value: number | undefined, rules: PageRules = {}): number {
    const { default: dflt = 50, max = 1000 } = rules;
    const n = value ?? 0;
    if (!Number.isInteger(n) || n < 0) {
      this.add(field, "must not be negative");
      return dflt;
    }
    return n === 0 ? dflt : Math.min(n, max);
  }

  /**
   * page_token: "" → null (first page); otherwise the cursor encoded by encodePageToken for the same query.
   * A token made for other filters, or not made by us, is a violation.
   */
  pageToken<T extends Record<string, string | number>>(field: string, token: string | undefined, query: unknown): T | null {
    if (!token) return null;
    try {
      const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { c?: unknown; q?: unknown };
      if (parsed.q !== queryHash(query) || !parsed.c || typeof parsed.c !== "object") throw new Error("mismatch");
      return parsed.c as T;
    } catch {
      this.add(field, "is not a page token of this query");
      return null;
    }
  }

  /** Throws InvalidArgumentError listing every violation, if any. */
  check(): void {
    if (this.list.length > 0) throw new InvalidArgumentError([...this.list]);
  }
}

/** An opaque next_page_token carrying a cursor, bound to the query's filters. */
export function encodePageToken(cursor: Record<string, string | number>, query: unknown): string {
  return Buffer.from(JSON.stringify({ c: cursor, q: queryHash(query) }), "utf8").toString("base64url");
}

/** Ids are ULIDs; anything else that fits is simply not found. */
export const ID_RULES = { max: 64 };
export const ETAG_RULES = { max: 64, min: 0 };

/** The fields an update_mask names, each one of `allowed`; a mask that is empty or names anything else is a violation. */
export function maskPaths<T extends string>(v: Violations, paths: string[] | undefined, allowed: readonly T[]): Set<T> {
  const out = new Set<T>();
  if (!paths || paths.length === 0) v.add("update_mask", `must name at least one of ${allowed.join(", ")}`);
  (paths ?? []).slice(0, 16).forEach((path, i) => {
    if ((allowed as readonly string[]).includes(path)) out.add(path as T);
    else v.add(`update_mask.paths[${i}]`, `must be one of ${allowed.join(", ")}`);
  });
  if ((paths?.length ?? 0) > 16) v.add("update_mask", "too many paths");
  return out;
}

/** The key cursor of a list read in key order (src/db/page.ts), from a page token made by nextToken for the same query. */
export function afterIdFromToken(v: Violations, token: string, query: unknown): string | undefined {
  const cursor = v.pageToken<{ a: string }>("page_token", token, query);
  if (cursor && typeof cursor.a !== "string") v.add("page_token", "is not a page token of this query");
  return cursor && typeof cursor.a === "string" ? cursor.a : undefined;
}

/** The next_page_token of a page: "" on the last one. */
export function nextToken(page: Page<unknown>, query: unknown): string {
  return page.nextAfter ? encodePageToken({ a: page.nextAfter }, query) : "";
}

/** Runs one validator and throws at once: `const id = validateOne((v) => v.string("id", req.id))`. */
export function validateOne<T>(fn: (v: Violations) => T): T {
  const v = new Violations();
  const out = fn(v);
  v.check();
  return out;
}

/** A required string, or InvalidArgumentError. */
export function requireString(field: string, value: string | undefined, rules?: StringRules): string {
  return validateOne((v) => v.string(field, value, rules));
}

/** A proto enum that may not be *_UNSPECIFIED, mapped to its domain string, or InvalidArgumentError. */
export function requireEnum<T extends string>(field: string, value: number | undefined, mapping: Readonly<Partial<Record<number, T>>>): T {
  return validateOne((v) => v.enumValue(field, value, mapping)) as T;
}

/** page_size and page_token together, or InvalidArgumentError naming whichever is bad. */
export function requirePage<T extends Record<string, string | number>>(req: { pageSize?: number; pageToken?: string }, query: unknown, rules?: PageRules): { pageSize: number; cursor: T | null } {
  return validateOne((v) => ({ pageSize: v.pageSize("page_size", req.pageSize, rules), cursor: v.pageToken<T>("page_token", req.pageToken, query) }));
}

function queryHash(query: unknown): string {
  return createHash("sha256").update(JSON.stringify(query ?? null)).digest("base64url").slice(0, 16);
}
