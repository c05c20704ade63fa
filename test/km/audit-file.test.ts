// The audit file kept open between appends, on the real filesystem: appends land whole and in the file at the path,
// a rotated (renamed) or removed file is followed by a new one holding the lines, and a path that cannot be written
// fails the append (fail closed) until it can be written again.
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createAuditFile, type AuditFile } from "../../src/km/audit-file.js";

let dir: string;
let path: string;
let file: AuditFile;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "km-audit-file-"));
  path = join(dir, "km", "audit.jsonl");
  file = createAuditFile(path);
});

afterEach(async () => {
  await file.close();
  rmSync(dir, { recursive: true, force: true });
});

const lines = (p = path): string[] => readFileSync(p, "utf8").split("\n").filter(Boolean);

describe("the audit file", () => {
  it("creates its directory and a 0600 file, and appends across calls without re-creating it", async () => {
    await file.append("a\n");
    const first = statSync(path);
    await file.append("b\nc\n");
    expect(lines()).toEqual(["a", "b", "c"]);
    expect(first.mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "km")).mode & 0o777).toBe(0o700);
    expect(statSync(path).ino).toBe(first.ino);
  });

  it("keeps what the file held: appends after existing lines", async () => {
    await file.append("old\n");
    await file.close();
    const again = createAuditFile(path);
    await again.append("new\n");
    await again.close();
    expect(lines()).toEqual(["old", "new"]);
  });

  it("concurrent appends all land, each whole", async () => {
    const texts = Array.from({ length: 50 }, (_, i) => `${JSON.stringify({ i, pad: "x".repeat(i * 40) })}\n`);
    await Promise.all(texts.map((t) => file.append(t)));
    const got = lines().map((l) => (JSON.parse(l) as { i: number }).i);
    expect(got.sort((a, b) => a - b)).toEqual(texts.map((_, i) => i));
  });

  it("after a rotation (rename + new file) the next append goes to the file at the path", async () => {
    await file.append("before\n");
    renameSync(path, `${path}.1`);
    await file.append("after\n");
    expect(lines()).toEqual(["after"]);
    // The rotated file may hold the same line too (written before the rotation was seen): a duplicate, never a gap.
    expect(lines(`${path}.1`)[0]).toBe("before");
    await file.append("later\n");
    expect(lines()).toEqual(["after", "later"]);
  });

  it("after the file is removed the next append re-creates it with the line", async () => {
    await file.append("one\n");
    unlinkSync(path);
    await file.append("two\n");
    expect(lines()).toEqual(["two"]);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it("fails closed when the path cannot be written, and recovers once it can", async () => {
    await file.append("ok\n");
    // The open file is replaced by a directory: a write to the old handle would land in a file that is gone.
    unlinkSync(path);
    mkdirSync(path);
    await expect(file.append("lost?\n")).rejects.toThrow(/EISDIR|illegal operation on a directory/);
    await expect(file.append("still?\n")).rejects.toThrow();
    rmSync(path, { recursive: true });
    await file.append("back\n");
    expect(lines()).toEqual(["back"]);
  });

  it("fails when the file cannot be created at all (its directory is a file)", async () => {
    writeFileSync(join(dir, "not-a-dir"), "x");
    const blocked = createAuditFile(join(dir, "not-a-dir", "audit.jsonl"));
    await expect(blocked.append("x\n")).rejects.toThrow();
    await blocked.close();
  });
});
