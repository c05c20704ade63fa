#!/usr/bin/env node
// The `dispatcher` command: the compiled program in dist/, run by plain node (./program.js says when src/ runs instead).
// Commands that run for long (roles, the agent) start telemetry first, before anything loads grpc-js, because in an
// ES-module program grpc-js is only instrumented when the OpenTelemetry hooks come first. The others (help, client
// commands, migrate) load no telemetry at all, so that they answer at once.
import { load } from "./program.js";

const argv = process.argv.slice(2);
const LONG_RUNNING = new Set(["start", "serve", "agent"]);

/** The command word: the first argument that is not an option (-c/--config take a value). */
function commandOf(args) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "-c" || args[i] === "--config") i++;
    else if (!args[i].startsWith("-")) return args[i];
  }
  return undefined;
}

const asksHelp = argv.some((a) => a === "--help" || a === "-h");
const telemetry = LONG_RUNNING.has(commandOf(argv)) && !asksHelp ? await load("telemetry/register") : undefined;
const { main } = await load("cli");
process.exitCode = await main(argv);
await telemetry?.shutdownTelemetry();
