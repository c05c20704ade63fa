// Where the local cloud keeps what its volumes, snapshots, images and buckets hold: one directory per resource,
// <account>/storage/<id>/, beside the resource's record. Copies (a snapshot of a volume, a volume from a snapshot, an
// image of a server's root) go to a partial directory first and are renamed into place, so a copy is whole or absent.
import { randomBytes } from "node:crypto";
import { cp, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import type { LocalContext } from "./context.js";

/** The resource's content directory (it may not exist yet). */
export function contentDir(ctx: LocalContext, id: string): string {
  return join(ctx.store.dir, "storage", id);
}

/**
 * Copies the directory `from` into the content directory of `id`, replacing what is there; `skip` names paths
 * relative to `from` left out (with everything under them). Symbolic links are copied as links, never followed.
 */
export async function copyInto(ctx: LocalContext, from: string, id: string, skip: readonly string[] = []): Promise<void> {
  const to = contentDir(ctx, id);
  const partial = `${to}.partial-${randomBytes(4).toString("hex")}`;
  await mkdir(join(ctx.store.dir, "storage"), { recursive: true, mode: 0o700 });
  try {
    await mkdir(from, { recursive: true, mode: 0o700 });
    await cp(from, partial, {
      recursive: true,
      verbatimSymlinks: true,
      preserveTimestamps: true,
      filter: (source) => {
        const rel = relative(from, source);
        return !skip.some((s) => rel === s || rel.startsWith(`${s}${sep}`));
      },
    });
    await mkdir(partial, { recursive: true, mode: 0o700 });
    await rm(to, { recursive: true, force: true });
    await rename(partial, to);
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
}

/** Copies the content of `id` into the directory `to` (merging over what is there). */
export async function copyOut(ctx: LocalContext, id: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true, mode: 0o700 });
  await cp(contentDir(ctx, id), to, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true, force: true });
}

/** Creates the empty content directory of `id`. */
export async function createContent(ctx: LocalContext, id: string): Promise<void> {
  await mkdir(contentDir(ctx, id), { recursive: true, mode: 0o700 });
}

/** Removes the content of `id` (and any copy of it left partial by a process that died). */
export async function removeContent(ctx: LocalContext, id: string): Promise<void> {
  const dir = join(ctx.store.dir, "storage");
  await rm(contentDir(ctx, id), { recursive: true, force: true });
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith(`${id}.partial-`)).map((n) => rm(join(dir, n), { recursive: true, force: true })));
}

/** Bytes in the content of `id` (regular files, links not followed); 0 when it has none. */
export async function contentBytes(ctx: LocalContext, id: string): Promise<number> {
  return treeBytes(contentDir(ctx, id));
}

async function treeBytes(dir: string): Promise<number> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let total = 0;
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) total += await treeBytes(path);
    else if (e.isFile()) total += (await stat(path)).size;
  }
  return total;
}
