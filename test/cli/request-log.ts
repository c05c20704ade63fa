// Reads the daily request logs (<dir>/YYYY_MM_DD.request.log) of a test dispatcher, checking each line's shape.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface RequestLine {
  time: string;
  method: string;
  peer: string;
  principal: string;
  code: string;
  duration_ms: number;
  trace_id: string;
}

const FIELDS = ["code", "duration_ms", "method", "peer", "principal", "time", "trace_id"];

/**
 * Every line of every request log in `dir`, oldest file first. Throws when a file is misnamed or a line is not
 * one JSON object with exactly the request-log fields, or lies in a file named after another UTC day.
 */
export function readRequestLog(dir: string): RequestLine[] {
  const files = readdirSync(dir).filter((f) => f.endsWith(".request.log")).sort();
  return files.flatMap((file) => {
    if (!/^\d{4}_\d{2}_\d{2}\.request\.log$/.test(file)) throw new Error(`request log named ${file}, expected YYYY_MM_DD.request.log`);
    return readFileSync(join(dir, file), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((text) => {
        const line = JSON.parse(text) as RequestLine;
        const keys = Object.keys(line).sort();
        if (keys.join() !== FIELDS.join()) throw new Error(`request log line with fields ${keys.join(", ")}: ${text}`);
        if (new Date(line.time).toISOString() !== line.time) throw new Error(`request log time is not ISO-8601 UTC: ${text}`);
        if (`${line.time.slice(0, 10).replace(/-/g, "_")}.request.log` !== file) throw new Error(`line of another day in ${file}: ${text}`);
        if (typeof line.duration_ms !== "number" || line.duration_ms < 0) throw new Error(`bad duration_ms: ${text}`);
        return line;
      });
  });
}
