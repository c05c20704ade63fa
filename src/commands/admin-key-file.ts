// The first start's admin API key in a file of its own, readable by its owner only, beside the terminal's copy: the
// terminal scrolls away or lands in a supervisor's log, the file stays where the operator can fetch it once.
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** Where `dispatcher start` writes the admin key it creates on first start. */
export const adminKeyPath = (dataDir: string): string => resolve(join(dataDir, "admin-key"));

/**
 * Writes `secret` to <dataDir>/admin-key with mode 0600 (a key left by an earlier install is replaced, never
 * appended to). Returns the path, or the reason it could not be written (e.g. a read-only file system).
 */
export function writeAdminKeyFile(dataDir: string, secret: string): { path: string } | { error: string } {
  const path = adminKeyPath(dataDir);
  try {
    mkdirSync(resolve(dataDir), { recursive: true, mode: 0o700 });
    // Created afresh, so that the mode applies: an existing file keeps its own mode when written over.
    rmSync(path, { force: true });
    writeFileSync(path, `${secret}\n`, { mode: 0o600, flag: "wx" });
    chmodSync(path, 0o600);
    return { path };
  } catch (err) {
    return { error: `${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
  }
}
