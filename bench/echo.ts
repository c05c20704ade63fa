// A raw grpc-js unary echo (no auth, no database): the ceiling the job benchmark compares itself to.
// As a script it serves on the port given; measureEcho() drives it from the calling process.
import { Client, Server, ServerCredentials, credentials, type ServiceDefinition } from "@grpc/grpc-js";
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort, percentile } from "./support.js";

const identity = (b: Buffer): Buffer => b;
const ECHO: ServiceDefinition = {
  echo: { path: "/bench.Echo/Echo", requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

export interface EchoFigures {
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

/** Starts an echo server in a child process and calls it with `inFlight` concurrent calls for `seconds`. */
export async function measureEcho(seconds = 3, inFlight = 64): Promise<EchoFigures> {
  const port = await freePort();
  const server = fork(fileURLToPath(import.meta.url), [String(port)], { execArgv: ["--import", "tsx"], stdio: "inherit" });
  await new Promise<void>((resolve) => server.once("message", () => resolve()));
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  const call = (): Promise<void> =>
    new Promise((resolve, reject) => client.makeUnaryRequest("/bench.Echo/Echo", identity, identity, Buffer.from("ping"), (err) => (err ? reject(err) : resolve())));
  const latencies: number[] = [];
  const end = Date.now() + seconds * 1000;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (Date.now() < end) {
        const t = performance.now();
        await call();
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (Date.now() - started) / 1000;
  client.close();
  server.kill("SIGTERM");
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / elapsed, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const server = new Server();
  server.addService(ECHO, { echo: (call: { request: Buffer }, cb: (e: null, r: Buffer) => void) => cb(null, call.request) });
  server.bindAsync(`127.0.0.1:${process.argv[2]}`, ServerCredentials.createInsecure(), () => process.send?.("ready"));
  process.on("SIGTERM", () => server.forceShutdown());
}
