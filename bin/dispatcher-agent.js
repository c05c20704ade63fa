#!/usr/bin/env node
// The guest agent on its own: `dispatcher agent` without loading the rest of the dispatcher (what guests run).
import { register } from "tsx/esm/api";

register();
const { agentMain } = await import("../src/commands/agent.ts");
process.exitCode = await agentMain(process.argv.slice(2));
