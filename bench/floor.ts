// The floor a job benchmark compares against: the peer harness's minimal MariaDB + JetStream job path (no gRPC, ORM,
// outbox, events or tracing), run in the same window as the dispatcher so that both see the same machine.
// The harness lives beside the repository (../shared/peers, or BENCH_PEERS_DIR); when it is absent or not installed,
// the benchmark says so and goes on without ratios.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { say } from "./support.js";

export interface FloorFigures {
  jobs_per_s: number;
  jobs_per_s_single: number;
  paced_rate: number;
  start_p99_ms: number;
  complete_p99_ms: number;
}

export function peersDirectory(): string {
  return resolve(process.env.BENCH_PEERS_DIR ?? join(process.cwd(), "..", "shared", "peers"));
}

/** Runs the floor (batch, single and paced phases); null when the harness cannot run here. */
export async function runFloor(options: { jobs: number; rate: number; seconds: number }): Promise<FloorFigures | null> {
  const dir = peersDirectory();
  if (!existsSync(join(dir, "run.mjs"))) {
    say(`floor: no peer harness at ${dir} (set BENCH_PEERS_DIR): running without the floor's ratios`);
    return null;
  }
  if (!existsSync(join(dir, "node_modules"))) {
    say(`floor: the peer harness at ${dir} is not installed (run \`npm ci\` there): running without the floor's ratios`);
    return null;
  }
  const args = ["run.mjs", "--systems=floor", `--n=${options.jobs}`, `--rate=${options.rate}`, `--seconds=${options.seconds}`];
  say(`floor: node ${args.join(" ")} (in ${dir})`);
  const out = await new Promise<string>((done, fail) => {
    const child = spawn(process.execPath, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    // The harness's progress, indented under ours.
    child.stderr.on("data", (d: Buffer) => process.stderr.write(d.toString().replace(/^(?=.)/gm, "  floor | ")));
    child.on("error", fail);
    child.on("exit", (code) => (code === 0 ? done(stdout) : fail(new Error(`the floor harness exited ${code}`))));
  });
  for (const line of out.split("\n")) {
    if (!line.startsWith("{")) continue;
    const parsed = JSON.parse(line) as Partial<FloorFigures> & { system?: string };
    if (parsed.system === "floor" && typeof parsed.jobs_per_s_single === "number") return parsed as FloorFigures;
  }
  throw new Error("the floor harness printed no JSON line for the floor");
}
