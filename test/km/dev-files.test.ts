// Development key files are created whole: processes starting together on a new data directory all read the one key
// a single process wrote, never an empty file.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, expect, it } from "vitest";

const dir = mkdtempSync(join(tmpdir(), "devkeys-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PATHS = 300;
const PROCESSES = 4;

/** One process: creates (or reads) each key file in turn, printing what it read and whether it made it. */
const child = `
import { ensureDevKeyFile } from "./src/km/dev-files.ts";
const out = [];
for (let i = 0; i < ${PATHS}; i++) {
  const r = ensureDevKeyFile(process.argv[1] + "/k" + i);
  out.push([r.text, r.created]);
}
process.stdout.write(JSON.stringify(out));
`;

it("processes racing to create the same key files read one whole key each, made by exactly one of them", async () => {
  const runs = await Promise.all(
    Array.from({ length: PROCESSES }, () =>
      promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", child, dir], { cwd: process.cwd(), maxBuffer: 64 << 20 }),
    ),
  );
  const seen = runs.map((r) => JSON.parse(r.stdout) as [string, boolean][]);
  for (let i = 0; i < PATHS; i++) {
    const texts = new Set(seen.map((s) => s[i]?.[0]));
    expect(texts.size, `k${i}: every process read the same key`).toBe(1);
    expect([...texts][0], `k${i}`).toMatch(/^# development key[^\n]*\n1:[A-Za-z0-9+/=]{40,}\n$/);
    expect(seen.filter((s) => s[i]?.[1]).length, `k${i}: made once`).toBe(1);
  }
}, 60_000);
