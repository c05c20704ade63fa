// The archive container and content checks, without a database: sealed content comes back byte for byte at any
// size; every kind of damage — a flipped bit anywhere, a cut, an extra byte, chunks swapped or dropped, another key —
// is refused with an ArchiveError that says what is wrong; and content whose counts or checksums disagree is refused.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { ArchiveError, newHeader, sealStream, type ArchiveHeader } from "../../src/backup/archive.js";
import { contentEvents, rowLine, TableDigest, type ContentEvent } from "../../src/backup/content.js";
import { backupKeyFingerprint } from "../../src/backup/keys.js";
import { archiveEvents, openArchive, verifyArchive } from "../../src/backup/reader.js";
import { parseKeyring } from "../../src/km/keys.js";

const dir = mkdtempSync(join(tmpdir(), "backup-archive-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const key1 = randomBytes(32);
const key2 = randomBytes(32);
const ring = (...keys: [number, Buffer][]) => parseKeyring(keys.map(([v, k]) => `${v}:${k.toString("base64")}`).join(","), "backup.key");
let n = 0;

/** Content lines of one table with `rows` rows of ~`width` characters, and its manifest. */
function content(rows: number, width = 40): string {
  const digest = new TableDigest();
  let out = `${JSON.stringify({ t: "table", database: "provisioning", name: "t", columns: ["id", "v", "b"], binary: [2] })}\n`;
  for (let i = 0; i < rows; i++) {
    const line = rowLine([String(i), i % 7 === 0 ? null : "x".repeat(width) + i, randomBytes(4).toString("base64")]);
    digest.add(line);
    out += `${line}\n`;
  }
  const sha256 = digest.digest();
  out += `${JSON.stringify({ t: "table-end", rows, sha256 })}\n`;
  const db = { name: "provisioning", schema: "p", server: { address: "h:1", version: "v" }, migrations: [], tables: [{ name: "t", rows, sha256 }] };
  return `${out}${JSON.stringify({ t: "manifest", format: 1, createdAt: "", finishedAt: "", dispatcherVersion: "t", databases: [db] })}\n`;
}

/** Seals `text` into a new archive file with `key` (small chunks, so that a few KB make many of them). */
async function seal(text: string, key = key1, version = 1, chunkBytes = 256): Promise<string> {
  const path = join(dir, `a${++n}.dbk`);
  const header: ArchiveHeader = { ...newHeader(version, backupKeyFingerprint(key)), chunkBytes };
  const { createWriteStream } = await import("node:fs");
  await pipeline(Readable.from([text]), createGzip(), sealStream(key, header), createWriteStream(path));
  return path;
}

async function events(path: string, keys = ring([1, key1])): Promise<ContentEvent[]> {
  const out: ContentEvent[] = [];
  for await (const ev of archiveEvents(openArchive(path, keys))) out.push(ev);
  return out;
}

/** A copy of `path` changed by `edit`. */
function altered(path: string, edit: (b: Buffer) => Buffer): string {
  const copy = join(dir, `x${++n}.dbk`);
  writeFileSync(copy, edit(Buffer.from(readFileSync(path))));
  return copy;
}

/** Byte offsets of each chunk frame (after the header). */
function frames(path: string): { start: number; len: number; final: boolean }[] {
  const b = readFileSync(path);
  let at = 12 + b.readUInt32BE(8);
  const out = [];
  while (at < b.length) {
    const len = b.readUInt32BE(at + 1);
    out.push({ start: at, len: 5 + len + 16, final: b[at] === 1 });
    at += 5 + len + 16;
  }
  return out;
}

const refusal = async (path: string, keys = ring([1, key1])): Promise<ArchiveError> => {
  const err = await events(path, keys).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, "the archive must be refused").toBeInstanceOf(ArchiveError);
  return err as ArchiveError;
};

describe("a sealed archive", () => {
  it.each([0, 1, 5, 300])("round-trips content of %i rows exactly, checking counts and checksums", async (rows) => {
    const text = content(rows);
    const path = await seal(text);
    const evs = await events(path);
    expect(evs.filter((e) => e.kind === "row")).toHaveLength(rows);
    const manifest = await verifyArchive(openArchive(path, ring([1, key1])));
    expect(manifest.databases[0]?.tables[0]?.rows).toBe(rows);
    // The ciphertext holds none of the content.
    expect(readFileSync(path).includes(Buffer.from("xxxxxxxx"))).toBe(false);
  });

  it("opens with any configured version whose key sealed it, and says which key it needs otherwise", async () => {
    const path = await seal(content(3), key2, 2);
    expect(await events(path, ring([1, key1], [2, key2]))).not.toHaveLength(0);
    const err = await (async () => {
      try {
        openArchive(path, ring([1, key1]));
        return null;
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ArchiveError);
    expect((err as ArchiveError).reason).toBe("BACKUP_WRONG_KEY");
    expect((err as Error).message).toMatch(/encrypted with backup key version 2 \(fingerprint [0-9a-f]{16}…\), which backup.key does not hold; it holds version 1/);
    expect((err as Error).message).not.toContain(key1.toString("base64"));
  });

  it("refuses a flipped bit in any chunk, in its frame, or in the header", async () => {
    const path = await seal(content(200));
    const f = frames(path);
    expect(f.length).toBeGreaterThan(5);
    for (const frame of [f[0], f[Math.floor(f.length / 2)], f[f.length - 1]]) {
      for (const offset of [5, 6 + Math.floor((frame?.len ?? 0) / 2), (frame?.len ?? 1) - 1]) {
        const at = (frame?.start ?? 0) + offset;
        const bad = altered(path, (b) => ((b[at] = (b[at] ?? 0) ^ 0x01), b));
        const err = await refusal(bad);
        expect(err.reason).toBe("BACKUP_DAMAGED");
        expect(err.message).toMatch(/is damaged or was altered: chunk \d+ \(at byte \d+\) failed authentication/);
      }
    }
    // The final flag of a middle chunk turned on: that chunk fails (its nonce says "not final").
    const mid = f[2] as { start: number };
    expect((await refusal(altered(path, (b) => ((b[mid.start] = 1), b)))).reason).toBe("BACKUP_DAMAGED");
    // A header byte (the salt's text): the archive key changes, so the first chunk fails.
    const header = readFileSync(path).subarray(12, 12 + readFileSync(path).readUInt32BE(8)).toString();
    const saltAt = 12 + header.indexOf('"salt":"') + 9;
    expect((await refusal(altered(path, (b) => ((b[saltAt] = b[saltAt] === 0x41 ? 0x42 : 0x41), b)))).message).toMatch(/chunk 1 .*failed authentication/);
  });

  it("refuses an archive cut short, one with bytes after its end, and chunks swapped or dropped", async () => {
    const path = await seal(content(200));
    const f = frames(path);
    const last = f[f.length - 1] as { start: number };
    const cutAtFrame = await refusal(altered(path, (b) => b.subarray(0, last.start)));
    expect(cutAtFrame.reason).toBe("BACKUP_TRUNCATED");
    expect(cutAtFrame.message).toMatch(/is truncated: it ends at byte \d+ after \d+ chunk\(s\), without its final chunk/);
    expect((await refusal(altered(path, (b) => b.subarray(0, b.length - 7)))).reason).toBe("BACKUP_TRUNCATED");
    expect((await refusal(altered(path, (b) => Buffer.concat([b, Buffer.from([0])])))).message).toMatch(/bytes after its final chunk/);
    const [a, b2] = [f[1], f[2]] as { start: number; len: number }[];
    const swapped = altered(path, (b) => Buffer.concat([b.subarray(0, a?.start), b.subarray(b2?.start, (b2?.start ?? 0) + (b2?.len ?? 0)), b.subarray(a?.start, (a?.start ?? 0) + (a?.len ?? 0)), b.subarray((b2?.start ?? 0) + (b2?.len ?? 0))]));
    expect((await refusal(swapped)).reason).toBe("BACKUP_DAMAGED");
    const dropped = altered(path, (b) => Buffer.concat([b.subarray(0, a?.start), b.subarray((a?.start ?? 0) + (a?.len ?? 0))]));
    expect((await refusal(dropped)).reason).toBe("BACKUP_DAMAGED");
  });

  it("refuses a file that is not an archive", async () => {
    const path = join(dir, "plain.txt");
    writeFileSync(path, "hello, not an archive\n");
    expect(() => openArchive(path, ring([1, key1]))).toThrow(/is not a dispatcher backup archive/);
  });
});

describe("archive content", () => {
  const run = async (text: string): Promise<unknown> => {
    const lines = text.split("\n").filter(Boolean);
    try {
      for await (const _ of contentEvents(Readable.from(lines), "x.dbk")) void _;
      return null;
    } catch (e) {
      return e;
    }
  };

  it("accepts what a backup writes, and refuses a row count, a checksum or a manifest that disagrees, or no manifest", async () => {
    const good = content(10);
    expect(await run(good)).toBeNull();
    const noManifest = good.split("\n").slice(0, -2).join("\n");
    expect(String(await run(noManifest))).toMatch(/no manifest at the end/);
    const lessRows = good.replace(/"rows":10,/, '"rows":11,');
    expect(String(await run(lessRows))).toMatch(/holds 10 rows .* but records 11/);
    const otherRow = good.replace('["1",', '["one",');
    expect(String(await run(otherRow))).toMatch(/sha256/);
    const lines = good.split("\n");
    const manifest = JSON.parse(lines[lines.length - 2] as string) as { databases: { tables: { rows: number }[] }[] };
    (manifest.databases[0]?.tables[0] as { rows: number }).rows = 9;
    lines[lines.length - 2] = JSON.stringify(manifest);
    expect(String(await run(lines.join("\n")))).toMatch(/the manifest's provisioning.t \(9 rows\) is not the table the archive holds/);
    const strayRow = `["1","x","AA=="]\n${good}`;
    expect(String(await run(strayRow))).toMatch(/a row outside a table/);
  });
});
