#!/usr/bin/env node
// The `dispatcher` command: the compiled program in dist/, run by plain node (./program.js says when src/ runs instead).
// Telemetry starts before anything loads grpc-js, because in an ES-module program grpc-js is only instrumented when the
// OpenTelemetry hooks come first.
import { load } from "./program.js";

const { shutdownTelemetry } = await load("telemetry/register");
const { main } = await load("cli");
process.exitCode = await main(process.argv.slice(2));
await shutdownTelemetry();
