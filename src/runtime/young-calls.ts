// What lets a call's objects die young in this process: every RPC server and client calls this once before its first
// call (idempotent). See ./async-bind.ts and ./slot-table.ts for the two ways Node 20, node:http2 and grpc-js otherwise
// keep each call's whole object graph alive until a full collection.
import { installAsyncBind } from "./async-bind.js";
import { installStreamTables } from "./stream-tables.js";

export function keepCallsYoung(): void {
  installAsyncBind();
  installStreamTables();
}
