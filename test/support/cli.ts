// Runs the `dispatcher` program in-process against a server, as an operator would from a shell.
import { vi } from "vitest";
import { buildFullProgram } from "../../src/cli.js";

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/** Runs `dispatcher <args[0]> --address <address> <args[1..]>` with `token`; returns the exit code, stdout and stderr. */
export async function runCli(address: string, token: string, args: string[]): Promise<CliRun> {
  process.env.DISPATCHER_CLIENT_TOKEN = token;
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk) => (out.push(String(chunk)), true));
  vi.spyOn(process.stderr, "write").mockImplementation((chunk) => (err.push(String(chunk)), true));
  let code = 0;
  try {
    await (await buildFullProgram((c) => (code = c))).parseAsync([args[0] as string, "--address", address, ...args.slice(1)], { from: "user" });
  } finally {
    vi.restoreAllMocks();
  }
  return { code, out: out.join(""), err: err.join("") };
}
