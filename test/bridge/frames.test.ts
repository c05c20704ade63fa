// The bridge's pure pieces: gRPC-Web frames, -text base64, grpc-timeout, percent-encoding and which headers become
// metadata.
import { Metadata } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { dataFrame, decodeText, FrameError, singleMessage, trailerFrame } from "../../src/rpc/grpc-web/frames.js";
import { parseTimeout, percentEncode, requestMetadata, trailerLines } from "../../src/rpc/grpc-web/metadata.js";
import { frame, parseFrames } from "./support.js";

describe("frames", () => {
  it("takes the one message out of a request body and refuses anything else", () => {
    expect(singleMessage(frame(Buffer.from("hello")))).toEqual(Buffer.from("hello"));
    expect(singleMessage(frame(new Uint8Array()))).toEqual(Buffer.alloc(0));
    const bad = [Buffer.alloc(0), Buffer.from([0, 0, 0]), frame(Buffer.from("hello")).subarray(0, 7), Buffer.concat([frame(Buffer.from("a")), frame(Buffer.from("b"))]), frame(Buffer.from("x"), 1), frame(Buffer.from("x"), 0x80), frame(Buffer.from("x"), 4)];
    for (const body of bad) expect(() => singleMessage(body), body.toString("hex")).toThrow(FrameError);
  });

  it("writes data and trailer frames a client parses", () => {
    const body = Buffer.concat([dataFrame(Buffer.from("one")), dataFrame(Buffer.from("two")), trailerFrame("grpc-status:0\r\ngrpc-message:\r\n")]);
    const { messages, trailers } = parseFrames(body);
    expect(messages.map(String)).toEqual(["one", "two"]);
    expect(trailers).toEqual({ "grpc-status": "0", "grpc-message": "" });
  });

  it("decodes -text bodies sent in separately padded pieces, and refuses what is not base64", () => {
    const bytes = frame(Buffer.from("grpc-web-text"));
    const pieces = [bytes.subarray(0, 1), bytes.subarray(1, 3), bytes.subarray(3)].map((b) => b.toString("base64")).join("");
    expect(decodeText(pieces)).toEqual(bytes);
    expect(decodeText(`${bytes.toString("base64")}\r\n`)).toEqual(bytes);
    expect(decodeText(bytes.toString("base64").replace(/=+$/, ""))).toEqual(bytes);
    for (const text of ["%%%", "QQ=Q", "A", "QUJD-"]) expect(() => decodeText(text), text).toThrow(FrameError);
  });
});

describe("metadata", () => {
  it("parses grpc-timeout in every unit and flags a malformed one", () => {
    expect(parseTimeout(undefined)).toBeUndefined();
    expect([parseTimeout("2H"), parseTimeout("3M"), parseTimeout("4S"), parseTimeout("500m"), parseTimeout("1500u"), parseTimeout("2000000n")]).toEqual([7_200_000, 180_000, 4_000, 500, 1.5, 2]);
    for (const bad of ["", "10", "1s", "123456789S", "-1S", "1.5S"]) expect(parseTimeout(bad), bad).toBeNaN();
  });

  it("percent-encodes grpc-message as gRPC does", () => {
    expect(percentEncode("job \"x\" not found")).toBe('job "x" not found');
    expect(percentEncode("100% sure\nnext")).toBe("100%25 sure%0Anext");
    expect(percentEncode("café")).toBe("caf%C3%A9");
  });

  it("forwards the call's headers as metadata and keeps the hop's own", () => {
    const md = requestMetadata({
      authorization: "Bearer k",
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "x-request-id": "r1",
      "x-token-bin": Buffer.from([1, 2, 3]).toString("base64"),
      connection: "keep-alive",
      "keep-alive": "timeout=5",
      "transfer-encoding": "chunked",
      host: "bridge",
      "content-type": "application/grpc-web+proto",
      "x-grpc-web": "1",
      "grpc-timeout": "1S",
      cookie: "session=secret",
      origin: "https://console.example.test",
    });
    expect(md.get("authorization")).toEqual(["Bearer k"]);
    expect(md.get("x-request-id")).toEqual(["r1"]);
    expect(md.get("x-token-bin")).toEqual([Buffer.from([1, 2, 3])]);
    expect(Object.keys(md.getMap()).sort()).toEqual(["authorization", "traceparent", "x-request-id", "x-token-bin"]);
  });

  it("puts status, message and trailing metadata (details in base64) in the trailer block", () => {
    const trailing = new Metadata();
    trailing.set("grpc-status-details-bin", Buffer.from([8, 5]));
    trailing.set("x-note", "kept");
    expect(trailerLines({ code: 5, details: "not found", metadata: trailing })).toBe("grpc-status:5\r\ngrpc-message:not found\r\ngrpc-status-details-bin:CAU=\r\nx-note:kept\r\n");
  });
});
