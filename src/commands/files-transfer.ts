// `dispatcher files upload|download`: an object's bytes streamed in 1 MiB chunks, with a progress bar on stderr when it
// is a terminal and plain progress lines otherwise; a download goes to a temporary file renamed into place once its
// sha256 checked out, so a file under the asked name is always whole.
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Writable } from "node:stream";
import { ObjectInfo } from "../gen/proto/dispatcher/v1/files.js";
import { json, withClient, type ClientCommandOptions } from "./client-command.js";
import { Progress } from "./transfer-progress.js";

/** Options of every `dispatcher files` command. */
export type FilesCommandOptions = ClientCommandOptions & { wait?: boolean | undefined; quiet?: boolean | undefined; progressTty?: boolean | undefined };

const CHUNK_BYTES = 1024 * 1024;

export interface UploadOptions extends FilesCommandOptions {
  contentType?: string | undefined;
  meta?: string[] | undefined;
}

/** Uploads `file` ("-": stdin) as `key`; the size of a file is announced, so a file that changes while read stores nothing. */
export async function runUpload(bucketId: string, key: string, file: string, options: UploadOptions): Promise<number> {
  const io = options.io ?? { out: (t: string) => void process.stdout.write(t), err: (t: string) => void process.stderr.write(t) };
  const fromStdin = file === "-";
  let size: number | null = null;
  if (!fromStdin) {
    const s = await stat(file).catch(() => null);
    if (!s?.isFile()) {
      io.err(`dispatcher files upload: ${file} is not a readable file\n`);
      return 2;
    }
    size = s.size;
  }
  const metadata = Object.fromEntries((options.meta ?? []).map((m) => [m.slice(0, m.indexOf("=")), m.slice(m.indexOf("=") + 1)]));
  return withClient("files upload", { ...options, io }, async (c) => {
    const progress = new Progress(io, `upload ${key}`, size, options.progressTty ?? process.stderr.isTTY === true, options.quiet ?? false);
    const hash = createHash("sha256");
    const source = fromStdin ? process.stdin : createReadStream(file, { highWaterMark: CHUNK_BYTES });
    async function* messages() {
      yield { part: { $case: "header" as const, value: { bucketId, key, contentType: options.contentType ?? "", metadata, sha256: "", ...(size !== null ? { sizeBytes: String(size) } : {}) } } };
      for await (const chunk of source as AsyncIterable<Buffer>) {
        // Chunks of at most CHUNK_BYTES, within every message limit.
        for (let at = 0; at < chunk.length; at += CHUNK_BYTES) {
          const part = chunk.subarray(at, at + CHUNK_BYTES);
          hash.update(part);
          progress.add(part.length);
          yield { part: { $case: "chunk" as const, value: part } };
        }
      }
    }
    const { object } = await c.files.uploadObject(messages());
    progress.finish();
    const digest = hash.digest("hex");
    if (object!.checksumAlgorithm === "sha256" && object!.checksum !== digest) {
      io.err(`dispatcher files upload: the stored object's sha256 ${object!.checksum} differs from the bytes sent (${digest})\n`);
      return 1;
    }
    if (options.json) io.out(json({ object: ObjectInfo.toJSON(object!), sha256: digest }));
    else io.out(`uploaded ${key}: ${object!.sizeBytes} bytes, ${object!.checksumAlgorithm}:${object!.checksum}\n`);
    return 0;
  });
}

/** Downloads `key` to `output` ("-": stdout; default: the key's last segment in the current directory). */
export async function runDownload(bucketId: string, key: string, options: FilesCommandOptions & { output?: string | undefined }): Promise<number> {
  const io = options.io ?? { out: (t: string) => void process.stdout.write(t), err: (t: string) => void process.stderr.write(t) };
  const output = options.output ?? (basename(key) || "download");
  const toStdout = output === "-";
  const partial = toStdout ? "" : join(dirname(output), `.${basename(output)}.${randomBytes(4).toString("hex")}.partial`);
  try {
    return await withClient("files download", { ...options, io }, async (c) => {
      const hash = createHash("sha256");
      let object: ObjectInfo | undefined;
      let progress: Progress | undefined;
      const sink: Writable = toStdout ? process.stdout : createWriteStream(partial, { mode: 0o600 });
      const opened = toStdout ? Promise.resolve() : new Promise<void>((resolve, reject) => sink.once("open", () => resolve()).once("error", reject));
      await opened;
      for await (const m of c.files.downloadObject({ bucketId, key })) {
        if (m.part?.$case === "object") {
          object = m.part.value;
          progress = new Progress(io, `download ${key}`, Number(object.sizeBytes), options.progressTty ?? process.stderr.isTTY === true, options.quiet ?? false);
        } else if (m.part?.$case === "chunk") {
          hash.update(m.part.value);
          progress?.add(m.part.value.length);
          if (!sink.write(m.part.value)) await new Promise<void>((resolve, reject) => sink.once("drain", resolve).once("error", reject));
        }
      }
      if (!toStdout) await new Promise<void>((resolve, reject) => sink.end((err?: Error | null) => (err ? reject(err) : resolve())));
      progress?.finish();
      const digest = hash.digest("hex");
      if (!object) {
        io.err("dispatcher files download: the stream ended without the object's metadata\n");
        return 1;
      }
      if (object.checksumAlgorithm === "sha256" && object.checksum !== digest) {
        io.err(`dispatcher files download: the bytes received have sha256 ${digest}, the object ${object.checksum}: nothing written\n`);
        return 1;
      }
      if (!toStdout) await rename(partial, output);
      if (!toStdout) io.out(options.json ? json({ object: ObjectInfo.toJSON(object), sha256: digest, file: output }) : `downloaded ${key} to ${output}: ${object.sizeBytes} bytes, sha256:${digest}\n`);
      return 0;
    });
  } finally {
    if (!toStdout) await rm(partial, { force: true });
  }
}
