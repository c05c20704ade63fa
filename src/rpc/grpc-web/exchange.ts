// One gRPC-Web call's HTTP side: the response headers, the data frames (base64 for -text), the final trailer frame or
// a trailers-only refusal, and the single settlement that ends its in-flight entry and writes its request log line.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import { status as Code, type Metadata, type StatusObject } from "@grpc/grpc-js";
import { dataFrame, trailerFrame } from "./frames.js";
import { responseHeaders, trailerHeaders, trailerLines } from "./metadata.js";

/** The two encodings of a gRPC-Web body. */
export interface WireMode {
  readonly text: boolean;
  /** Content type of the response. */
  readonly contentType: string;
}

/** application/grpc-web, application/grpc-web+proto and their -text forms; anything else (+json …) is undefined. */
export function wireMode(contentType: string | undefined): WireMode | undefined {
  const type = contentType?.split(";", 1)[0]?.trim().toLowerCase();
  if (type === "application/grpc-web" || type === "application/grpc-web+proto") return { text: false, contentType: "application/grpc-web+proto" };
  if (type === "application/grpc-web-text" || type === "application/grpc-web-text+proto") return { text: true, contentType: "application/grpc-web-text+proto" };
  return undefined;
}

/** What an exchange reports when it settles: its status code (CANCELLED when the client went away). */
export type OnSettled = (exchange: Exchange, code: Code) => void;

/** Something to stop when the exchange is aborted: the forwarded call. */
export interface Cancellable {
  cancel(): void;
}

/** How a call ended: its status and trailing metadata. */
export type Outcome = Pick<StatusObject, "code" | "details"> & { metadata?: Metadata | undefined };

export class Exchange {
  readonly started = performance.now();
  settled = false;
  call: Cancellable | undefined;
  /** Close the connection after this reply (an upload too large to read to its end). */
  closeConnection = false;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly mode: WireMode,
    readonly path: string,
    /** CORS headers of this request's origin, sent on every response. */
    private readonly base: OutgoingHttpHeaders,
    private readonly closing: () => boolean,
    private readonly onSettled: OnSettled,
  ) {
    // The client went away before the reply ended: cancel the forwarded call (the gRPC server sees CANCELLED).
    res.once("close", () => {
      if (this.settled) return;
      this.call?.cancel();
      this.settle(Code.CANCELLED);
    });
  }

  /** Sends the response headers (once): 200, the content type, CORS, and the server's initial metadata. */
  head(metadata?: Metadata): void {
    if (this.res.headersSent || this.settled) return;
    this.res.writeHead(200, this.headers(responseHeaders(metadata, {})));
    // Streams: headers leave now, not with the first message.
    this.res.flushHeaders();
  }

  /** Writes one message frame (sent at once); false when the socket wants the caller to wait for "drain". */
  message(message: Buffer): boolean {
    if (this.settled) return true;
    const frame = dataFrame(message);
    return this.res.write(this.mode.text ? frame.toString("base64") : frame);
  }

  /** Ends the response with the trailer frame of `status` (after the unary reply's message, when there is one). */
  finish(status: Outcome, initial?: Metadata, reply?: Buffer): void {
    if (this.settled) return;
    const trailer = trailerFrame(trailerLines(status));
    const body = this.encode(reply ? [dataFrame(reply), trailer] : [trailer]);
    if (!this.res.headersSent) {
      // A unary reply goes out in one write with its length: no chunked encoding.
      this.res.writeHead(200, this.headers(responseHeaders(initial, { "content-length": String(body.length) })));
    }
    this.res.end(body);
    this.settle(status.code);
  }

  /**
   * A reply the bridge makes itself, before or instead of forwarding: trailers-only (the status in the headers and
   * in a trailer frame, so that every client finds it).
   */
  refuse(code: Code, message: string): void {
    if (this.settled) return;
    if (this.res.headersSent) {
      this.finish({ code, details: message });
      return;
    }
    const body = this.encode([trailerFrame(trailerLines({ code, details: message }))]);
    this.res.writeHead(200, this.headers({ ...trailerHeaders(code, message), "content-length": String(body.length) }));
    this.res.end(body);
    this.settle(code);
  }

  /** Stops the exchange now (end of a stop's grace period): the forwarded call is cancelled, the socket closed. */
  abort(): void {
    if (this.settled) return;
    this.call?.cancel();
    this.res.destroy();
    this.settle(Code.CANCELLED);
  }

  private settle(code: Code): void {
    if (this.settled) return;
    this.settled = true;
    this.onSettled(this, code);
  }

  private headers(extra: OutgoingHttpHeaders): OutgoingHttpHeaders {
    const headers: OutgoingHttpHeaders = { ...this.base, ...extra, "content-type": this.mode.contentType };
    // A stopping bridge lets each connection go after its current reply.
    if (this.closeConnection || this.closing()) headers.connection = "close";
    return headers;
  }

  private encode(frames: Buffer[]): Buffer {
    const bytes = frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames);
    return this.mode.text ? Buffer.from(bytes.toString("base64"), "latin1") : bytes;
  }
}
