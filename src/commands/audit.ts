// `dispatcher audit ls`: the audit trail (who changed users, groups, roles, API keys, clouds, accounts, budget codes
// and cloud resources), newest first, through the dispatcher's API. Admins only.
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import { AuditEvent } from "../gen/proto/dispatcher/v1/audit.js";
import { json, parseTime, table } from "./client-command.js";
import { groupRunner } from "./clouds.js";

function parseLimit(value: string): number {
  if (!/^\d{1,7}$/.test(value) || Number(value) < 1) throw new CommanderInvalidArgument("a whole number of events, at least 1");
  return Number(value);
}

/** "group" or "group:01J…" → the object filters. */
function parseObject(value: string): { type: string; id: string } {
  const m = /^([a-z][a-z0-9_]*)(?::(.+))?$/.exec(value);
  if (!m) throw new CommanderInvalidArgument("an object type, or type:id (e.g. group, group:01JABC…, budget_code:ops)");
  return { type: m[1] ?? "", id: m[2] ?? "" };
}

/** The diff in one short line: `roles: ["reader"] → ["admin","reader"]; name: → "ops"`. */
function diffLine(diffJson: string): string {
  if (!diffJson) return "-";
  const diff = JSON.parse(diffJson) as Record<string, { from?: unknown; to?: unknown }>;
  return Object.entries(diff)
    .map(([field, c]) => `${field}: ${"from" in c ? JSON.stringify(c.from) : ""} → ${"to" in c ? JSON.stringify(c.to) : "(gone)"}`)
    .join("; ");
}

export function addAuditCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  const audit = program.command("audit").description("the audit trail: who changed what, when (admins only)").option("-a, --address <host:port>", "dispatcher to call (default: client.address)");
  const run = groupRunner(audit, configFile, setExit);
  audit
    .command("ls")
    .alias("list")
    .description("recorded changes, newest first")
    .option("--object <type[:id]>", "only changes to this object type, or this one object (e.g. group:01J…, budget_code:ops)", parseObject)
    .option("--principal <id>", "only changes made by this principal (a user id, or system)")
    .option("--since <time>", "only changes at or after this time (ISO 8601)", parseTime)
    .option("--until <time>", "only changes before this time (ISO 8601)", parseTime)
    .option("-n, --limit <n>", "at most this many events", parseLimit, 50)
    .option("--json", "JSON instead of a table", false)
    .action((opts: { object?: { type: string; id: string }; principal?: string; since?: Date; until?: Date; limit: number }, cmd: Command) =>
      run("audit", async (c, io, o) => {
        const events: AuditEvent[] = [];
        let pageToken = "";
        do {
          const page = await c.audit.listAuditEvents({
            pageSize: Math.min(1000, opts.limit - events.length),
            pageToken,
            objectType: opts.object?.type ?? "",
            objectId: opts.object?.id ?? "",
            principal: opts.principal ?? "",
            startTime: opts.since,
            endTime: opts.until,
          });
          events.push(...page.events);
          pageToken = page.nextPageToken;
        } while (pageToken && events.length < opts.limit);
        if (o.json) return io.out(json({ events: events.map((e) => AuditEvent.toJSON(e)) }));
        io.out(table(["TIME", "PRINCIPAL", "ACTION", "OBJECT", "TRACE", "CHANGES"], events.map((e) => [e.time?.toISOString() ?? "-", e.principal, e.action, `${e.objectType}:${e.objectId}`, e.traceId || "-", diffLine(e.diffJson)])));
      })(cmd),
    );
}
