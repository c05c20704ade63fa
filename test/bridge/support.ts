// Test support for the gRPC-Web bridge: a third-party gRPC-Web client (connect's transport, protobuf-es messages
// built from the project's descriptor set) and a raw HTTP/1.1 gRPC-Web call for what clients do not send themselves.
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { createFileRegistry, fromBinary, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";

const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(new URL("../../src/gen/descriptors.binpb", import.meta.url))));

export function service(name: string): DescService {
  const s = registry.getService(name);
  if (!s) throw new Error(`${name} is not in the descriptor set`);
  return s;
}

export function message(name: string): DescMessage {
  const m = registry.getMessage(name);
  if (!m) throw new Error(`${name} is not in the descriptor set`);
  return m;
}

/** A connect client of `name` over gRPC-Web (HTTP/1.1) at `baseUrl`. Methods take plain request objects. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function webClient(baseUrl: string, name: string, token?: string): Record<string, (req: object, options?: object) => any> {
  const transport = createGrpcWebTransport({
    baseUrl,
    httpVersion: "1.1",
    interceptors: token ? [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))] : [],
  });
  return createClient(service(name), transport) as Client<DescService> as unknown as Record<string, (req: object, options?: object) => unknown>;
}

export interface RawReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One raw HTTP/1.1 POST (or another method) to the bridge. */
export function rawPost(url: string, body: Buffer | string, headers: Record<string, string>, method = "POST"): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { ...headers, "content-length": String(Buffer.byteLength(body)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** A gRPC-Web data frame around `payload`, written here independently of the bridge's own framing code. */
export function frame(payload: Uint8Array, flags = 0): Buffer {
  const header = Buffer.from([flags, 0, 0, 0, 0]);
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

/** Splits a gRPC-Web response body into its messages and its trailers. */
export function parseFrames(body: Buffer): { messages: Buffer[]; trailers: Record<string, string> } {
  const messages: Buffer[] = [];
  const trailers: Record<string, string> = {};
  let at = 0;
  while (at + 5 <= body.length) {
    const flags = body[at] as number;
    const length = body.readUInt32BE(at + 1);
    const payload = body.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if (flags & 0x80) {
      for (const line of payload.toString("latin1").split("\r\n").filter(Boolean)) {
        const i = line.indexOf(":");
        trailers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
    } else messages.push(payload);
  }
  if (at !== body.length) throw new Error(`${body.length - at} bytes after the last whole frame`);
  return { messages, trailers };
}
