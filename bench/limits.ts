// npm run bench:limits — one principal floods a server with per-principal limits while a second makes its ordinary
// calls: prints how many of the flood's calls were refused RESOURCE_EXHAUSTED (with RetryInfo) and the second
// principal's p99 latency in a quiet run and during the flood, and their ratio (the promise: within 1.5×).
// Server and clients share this process (what is measured is the limiter's isolation, not the network).
// Options (env): BENCH_SECONDS (per phase, default 5), BENCH_FLOOD_IN_FLIGHT (64), BENCH_RATE (the flooder's limit, 200/s).
import { loadavg } from "node:os";
import { Client, credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { loadConfig } from "../src/config.js";
import type { Principal } from "../src/iam/principal.js";
import { createLogger } from "../src/log.js";
import { createRpcServer } from "../src/rpc/server.js";
import { decodeStatusDetails } from "../src/rpc/status.js";
import { createSystemService } from "../src/system/service.js";
import { systemHandlers } from "../src/system/handlers.js";
import { CORES, percentile, round, say } from "./support.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const FLOOD = Number(process.env.BENCH_FLOOD_IN_FLIGHT ?? 64);
const RATE = Number(process.env.BENCH_RATE ?? 200);
const QUIET_IN_FLIGHT = 4;
const METHOD = "/dispatcher.v1.SystemService/WhoAmI";
const PRINCIPALS: Record<string, Principal> = {
  flooder: { id: "flooder", kind: "user", roles: ["reader"], displayName: "flooder" },
  steady: { id: "steady", kind: "user", roles: ["reader"], displayName: "steady" },
};

const base = loadConfig({}, "");
const config = { ...base, server: { ...base.server, bind: "127.0.0.1", port: 0, reflection: false, rateLimitPerSecond: RATE, rateLimitBurst: RATE } };
const server = createRpcServer({ config, log: createLogger({ level: "error" }), authenticate: async (token) => PRINCIPALS[token] ?? null, services: [systemHandlers(createSystemService({ roles: ["dispatcher"] }))] });
const port = await server.start();
say(`bench:limits on ${CORES} cores — flooder ${FLOOD} in flight at a limit of ${RATE}/s, steady caller ${QUIET_IN_FLIGHT} in flight (its own limit: the same), ${SECONDS} s per phase; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);

const passthrough = (b: Buffer): Buffer => b;
function caller(token: string) {
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  const once = (): Promise<ServiceError | null> =>
    new Promise((resolve) => client.makeUnaryRequest(METHOD, passthrough, passthrough, Buffer.alloc(0), md, { deadline: Date.now() + 10_000 }, (err) => resolve(err)));
  return { once, close: () => client.close() };
}

/** Runs `inFlight` loops of calls until `until`; latencies of successful calls, and the refusals' count and RetryInfo. */
async function drive(token: string, inFlight: number, until: number, pauseMs = 0) {
  const c = caller(token);
  const latencies: number[] = [];
  let refused = 0;
  let withRetryInfo = 0;
  let other = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (Date.now() < until) {
        const t = performance.now();
        const err = await c.once();
        if (!err) latencies.push(performance.now() - t);
        else if (err.code === status.RESOURCE_EXHAUSTED) {
          refused++;
          if ((decodeStatusDetails(err.metadata)?.retryDelayMs ?? 0) > 0) withRetryInfo++;
        } else other++;
        if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
      }
    }),
  );
  c.close();
  return { latencies, refused, withRetryInfo, other };
}

// Warm up, then the steady caller alone, then the same with the flood beside it. The steady caller stays under its
// own limit (about 4 × 1000/(latency + 10 ms) calls per second at most).
await drive("steady", QUIET_IN_FLIGHT, Date.now() + 1_000, 10);
const quiet = await drive("steady", QUIET_IN_FLIGHT, Date.now() + SECONDS * 1000, 10);
const end = Date.now() + SECONDS * 1000;
const [flood, loaded] = await Promise.all([drive("flooder", FLOOD, end), drive("steady", QUIET_IN_FLIGHT, end, 10)]);
await server.stop(1_000);

const p99Quiet = percentile([...quiet.latencies].sort((a, b) => a - b), 99);
const p99Loaded = percentile([...loaded.latencies].sort((a, b) => a - b), 99);
const result = {
  floodCalls: flood.latencies.length + flood.refused + flood.other,
  floodServed: flood.latencies.length,
  floodRefused: flood.refused,
  floodRefusedWithRetryInfo: flood.withRetryInfo,
  steadyQuietCalls: quiet.latencies.length,
  steadyLoadedCalls: loaded.latencies.length,
  steadyRefused: loaded.refused,
  steadyP99QuietMs: round(p99Quiet, 2),
  steadyP99LoadedMs: round(p99Loaded, 2),
  ratio: round(p99Loaded / p99Quiet, 2),
};
say(`flooder: ${result.floodCalls} calls, ${result.floodServed} served (${round(result.floodServed / SECONDS, 0)}/s), ${result.floodRefused} RESOURCE_EXHAUSTED (${result.floodRefusedWithRetryInfo} with RetryInfo)`);
say(`steady caller: p99 ${result.steadyP99QuietMs} ms quiet, ${result.steadyP99LoadedMs} ms during the flood (${result.ratio}×), ${result.steadyRefused} refused`);
console.log(JSON.stringify(result));
