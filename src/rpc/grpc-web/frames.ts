// gRPC-Web framing: the 5-byte length-prefixed frames of a request body, the data and trailer frames of a response,
// and the base64 of the -text variant, in which a body may be several independently padded base64 runs.

const HEADER_BYTES = 5;
/** Flag bit of a frame whose payload is compressed (not supported: the bridge asks for none). */
const COMPRESSED = 0x01;
/** Flag bit of the frame that carries the trailers, last in a response. */
const TRAILER = 0x80;

/** A request body that is not one well-formed, uncompressed data frame. */
export class FrameError extends Error {
  override readonly name = "FrameError";
}

/**
 * The message of a unary or server-streaming request: exactly one uncompressed data frame that fills the body.
 * Throws FrameError otherwise.
 */
export function singleMessage(body: Buffer): Buffer {
  if (body.length < HEADER_BYTES) throw new FrameError(body.length === 0 ? "empty request body: expected one gRPC-Web frame" : "truncated gRPC-Web frame header");
  const flags = body[0] as number;
  const length = body.readUInt32BE(1);
  if (flags & TRAILER) throw new FrameError("a request may not carry a trailer frame");
  if (flags & COMPRESSED) throw new FrameError("compressed request frames are not supported (send grpc-encoding identity)");
  if (flags !== 0) throw new FrameError(`unknown gRPC-Web frame flags 0x${flags.toString(16)}`);
  const end = HEADER_BYTES + length;
  if (end > body.length) throw new FrameError(`truncated gRPC-Web frame: ${length} bytes announced, ${body.length - HEADER_BYTES} sent`);
  if (end < body.length) throw new FrameError("more than one message in the request: client streaming is not supported over gRPC-Web");
  return body.subarray(HEADER_BYTES, end);
}

/** One data frame holding `message`. */
export function dataFrame(message: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, HEADER_BYTES);
  return frame;
}

/** The trailer frame for HTTP/1-style header lines (`name:value\r\n` each, names lower case). */
export function trailerFrame(lines: string): Buffer {
  const length = Buffer.byteLength(lines, "latin1");
  const frame = Buffer.allocUnsafe(HEADER_BYTES + length);
  frame[0] = TRAILER;
  frame.writeUInt32BE(length, 1);
  frame.write(lines, HEADER_BYTES, "latin1");
  return frame;
}

const BASE64_RUN = /[A-Za-z0-9+/]*={0,2}/y;

/**
 * Decodes a grpc-web-text body. Clients may send it in pieces, each base64-encoded and padded on its own, so a body
 * can hold padding in the middle: each padded run decodes separately. Throws FrameError on anything not base64.
 */
export function decodeText(text: string): Buffer {
  const compact = /\s/.test(text) ? text.replace(/\s+/g, "") : text;
  const parts: Buffer[] = [];
  let at = 0;
  while (at < compact.length) {
    BASE64_RUN.lastIndex = at;
    const run = BASE64_RUN.exec(compact)?.[0] ?? "";
    // A padded run is whole quads; an unpadded one (only possible last) may not leave a lone sextet.
    if (run.length === 0 || run.length % 4 === 1 || (run.includes("=") && run.length % 4 !== 0)) throw new FrameError("grpc-web-text body is not valid base64");
    parts.push(Buffer.from(run, "base64"));
    at += run.length;
  }
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}
