#!/usr/bin/env node
// The `dispatcher` command. TypeScript runs through tsx's loader; telemetry starts before anything loads grpc-js,
// because in an ES-module program grpc-js is only instrumented when the OpenTelemetry hooks come first.
import { register } from "tsx/esm/api";

register();
const { shutdownTelemetry } = await import("../src/telemetry/register.ts");
const { main } = await import("../src/cli.ts");
process.exitCode = await main(process.argv.slice(2));
await shutdownTelemetry();
