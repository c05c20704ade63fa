#!/usr/bin/env node
// The guest agent on its own: `dispatcher agent` without loading the rest of the dispatcher (what guests run).
import { load } from "./program.js";

const { agentMain } = await load("commands/agent");
process.exitCode = await agentMain(process.argv.slice(2));
