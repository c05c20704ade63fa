// HTTP/1.1 headers ⇄ gRPC metadata for the bridge: which request headers travel on as metadata, the grpc-timeout
// header, response headers from the server's initial metadata, and the trailer block of the final frame.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { Metadata, type StatusObject } from "@grpc/grpc-js";

/**
 * Request headers that describe this HTTP/1.1 hop or the gRPC-Web encoding rather than the call: they never become
 * metadata. grpc-* names are reserved by gRPC (grpc-timeout is turned into the forwarded call's deadline); cookies
 * are a browser's, not the call's, and stay at the bridge.
 */
const NOT_FORWARDED = new Set([
  "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host",
  "proxy-authorization", "proxy-authenticate", "content-type", "content-length", "accept", "accept-encoding",
  "accept-language", "user-agent", "x-user-agent", "x-grpc-web", "origin", "referer", "cookie", "expect", "priority",
  "cache-control", "pragma", "dnt",
]);

/** The request headers as metadata for the forwarded call; headers that gRPC metadata cannot hold are left out. */
export function requestMetadata(headers: IncomingHttpHeaders): Metadata {
  const metadata = new Metadata();
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || NOT_FORWARDED.has(name) || name.startsWith("grpc-") || name.startsWith("sec-") || name.startsWith("access-control-")) continue;
    const values = Array.isArray(value) ? value : name.endsWith("-bin") ? value.split(",") : [value];
    for (const v of values) {
      try {
        metadata.add(name, name.endsWith("-bin") ? Buffer.from(v.trim(), "base64") : v);
      } catch {
        // A name or value that HTTP/1.1 allows and gRPC metadata does not (e.g. non-ASCII): not forwarded.
      }
    }
  }
  return metadata;
}

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

/** grpc-timeout ("<1-8 digits><H|M|S|m|u|n>") in milliseconds; undefined when absent; NaN when malformed. */
export function parseTimeout(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(Array.isArray(header) ? (header[0] ?? "") : header.trim());
  if (!m) return Number.NaN;
  return Number(m[1]) * (TIMEOUT_UNIT_MS[m[2] as string] as number);
}

/** Metadata keys that HTTP/1.1 or the bridge itself sets on a response. */
const NOT_RETURNED = new Set(["content-type", "content-length", "transfer-encoding", "connection", "keep-alive", "date", "trailer", "te", "upgrade"]);

/** The server's initial metadata as response headers (-bin values in base64, as gRPC-Web clients expect). */
export function responseHeaders(metadata: Metadata | undefined, into: OutgoingHttpHeaders): OutgoingHttpHeaders {
  if (!metadata) return into;
  for (const [name, values] of Object.entries(metadata.toJSON())) {
    if (NOT_RETURNED.has(name) || values.length === 0) continue;
    into[name] = values.map((v) => (typeof v === "string" ? v : v.toString("base64"))).join(", ");
  }
  return into;
}

/**
 * The trailer block of the final frame: grpc-status, grpc-message (percent-encoded), then the trailing metadata —
 * grpc-status-details-bin among it, so that clients can decode the rich error — as `name:value\r\n` lines.
 */
export function trailerLines(status: Pick<StatusObject, "code" | "details"> & { metadata?: Metadata | undefined }): string {
  let lines = `grpc-status:${status.code}\r\ngrpc-message:${percentEncode(status.details)}\r\n`;
  if (status.metadata) {
    for (const [name, values] of Object.entries(status.metadata.toJSON())) {
      if (name === "grpc-status" || name === "grpc-message") continue;
      // grpc-js admits no CR or LF in a metadata value, so a value cannot break the block's lines.
      for (const v of values) lines += `${name}:${typeof v === "string" ? v : v.toString("base64")}\r\n`;
    }
  }
  return lines;
}

/** The same trailers as response headers, for a trailers-only reply that the bridge makes itself. */
export function trailerHeaders(code: number, message: string): OutgoingHttpHeaders {
  return { "grpc-status": String(code), "grpc-message": percentEncode(message) };
}

/** gRPC's percent-encoding of grpc-message: bytes outside printable ASCII, and '%', as %XX of their UTF-8. */
export function percentEncode(message: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
