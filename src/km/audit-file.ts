// KM's audit file: an append-only JSON-lines file kept open between appends, each append durable when it resolves.
// Opened with O_APPEND | O_DSYNC, so one write() both appends and waits for the data to reach the disk (what write +
// fdatasync did, in one system call instead of five with the open, fstat and close of every batch). A file rotated or
// removed meanwhile is noticed on the next append, which also checks that the path still names the open file, and the
// append is written again into the file now at the path: a record is never left only in a file that is gone.
import { constants } from "node:fs";
import { mkdir, open, stat, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";

export interface AuditFile {
  /** Appends `text` (whole lines); resolves once it is on disk in the file at the path, rejects when it cannot be. */
  append(text: string): Promise<void>;
  /** Closes the file (after the appends under way); a later append opens it again. */
  close(): Promise<void>;
}

const FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC;

interface Opened {
  fh: FileHandle;
  dev: number;
  ino: number;
  /** Appends using the handle now, and whether it is to be closed once they are done. */
  users: number;
  retired: boolean;
}

const sameFile = (a: { dev: number; ino: number }, b: { dev: number; ino: number }): boolean => a.dev === b.dev && a.ino === b.ino;

/** Opens (creating, 0600) the file; a new file's directory entry is flushed too, so the file survives a crash. */
async function openDurably(path: string): Promise<Opened> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const fh = await open(path, FLAGS, 0o600);
  try {
    const st = await fh.stat();
    if (st.size === 0) {
      const dir = await open(dirname(path), "r");
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    }
    return { fh, dev: st.dev, ino: st.ino, users: 0, retired: false };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

export function createAuditFile(path: string): AuditFile {
  // One open at a time, shared by concurrent appends; reset after a failure or a rotation so the next append reopens.
  let current: Promise<Opened> | undefined;

  const opened = (): Promise<Opened> => {
    current ??= openDurably(path).catch((err: unknown) => {
      current = undefined;
      throw err;
    });
    return current;
  };

  /** Drops `stale` (if it is still the current file); it is closed once no append uses it. */
  const retire = (stale: Promise<Opened>, o: Opened): void => {
    if (current === stale) current = undefined;
    o.retired = true;
  };

  /** Runs `fn` with the file open, and closes a retired handle once its last user is done. */
  const using = async <T>(handle: Promise<Opened>, fn: (o: Opened) => Promise<T>): Promise<T> => {
    const o = await handle;
    o.users++;
    try {
      return await fn(o);
    } finally {
      if (--o.users === 0 && o.retired) await o.fh.close().catch(() => undefined);
    }
  };

  const writeAll = async (o: Opened, data: Buffer): Promise<void> => {
    // Regular files take a whole write at once; the loop only guards against a short write.
    for (let at = 0; at < data.length; ) at += (await o.fh.write(data, at)).bytesWritten;
  };

  return {
    async append(text) {
      const data = Buffer.from(text, "utf8");
      const handle = opened();
      const moved = await using(handle, async (o) => {
        // The write and the check that the path still names this file run side by side: no added wait.
        const [written, atPath] = await Promise.allSettled([writeAll(o, data), stat(path)]);
        if (written.status === "rejected") {
          retire(handle, o);
          throw written.reason;
        }
        if (atPath.status === "fulfilled" && sameFile(atPath.value, o)) return false;
        if (atPath.status === "rejected" && (atPath.reason as NodeJS.ErrnoException).code !== "ENOENT") throw atPath.reason;
        retire(handle, o);
        return true;
      });
      // Rotated (renamed away) or removed: the lines go again into the file now at the path, created if need be. The
      // rotated file keeps its copy — a duplicate, never a gap.
      if (moved) await using(opened(), (o) => writeAll(o, data));
    },

    async close() {
      const handle = current;
      current = undefined;
      if (!handle) return;
      const o = await handle.catch(() => undefined);
      if (!o) return;
      o.retired = true;
      if (o.users === 0) await o.fh.close().catch(() => undefined);
    },
  };
}
