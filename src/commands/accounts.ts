// `dispatcher accounts list|get|connect|discover|subscriptions|events`: cloud accounts through the dispatcher's API.
// Credentials for `connect` are read from a file or stdin as JSON, never from the command line (which other users of
// the machine, shell history and process listings can see).
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { Account, AccountEvent, accountStatusToJSON, type AccountStatus } from "../gen/proto/dispatcher/v1/provisioning.js";
import { Job } from "../gen/proto/dispatcher/v1/jobs.js";
import { accountIdOf, EXIT_USAGE, json, table, time, type ClientCommandOptions, type CommandIo } from "./client-command.js";
import { allPages, groupRunner } from "./clouds.js";

const statusName = (s: AccountStatus): string => accountStatusToJSON(s).replace("ACCOUNT_STATUS_", "").toLowerCase();

function printAccounts(io: CommandIo, o: ClientCommandOptions, accounts: Account[]): void {
  if (o.json) io.out(json({ accounts: accounts.map((a) => Account.toJSON(a)) }));
  else io.out(table(["ID", "NAME", "CLOUD", "STATUS", "PROVIDER ACCOUNT", "BUDGET CODE", "DISCOVERED", "MESSAGE"], accounts.map((a) => [a.id, a.name, a.cloudId, statusName(a.status), a.providerAccountId || "-", a.defaultBudgetCode || "-", time(a.discoverTime), a.statusMessage])));
}

/** Where `connect` reads the credential fields from: a file, or stdin for "-" (the default). */
async function readSecretInput(path: string): Promise<string> {
  if (path !== "-") return readFile(path, "utf8");
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

/** The credential fields: a JSON object of strings, e.g. {"access_key_id": "…", "secret_access_key": "…"}. */
function parseCredentialFields(text: string): Record<string, string> | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Never echo the input: it is a secret.
    return "the credentials are not valid JSON";
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return "the credentials must be a JSON object of field names to string values";
  const entries = Object.entries(parsed as Record<string, unknown>);
  if (entries.some(([, v]) => typeof v !== "string")) return "every credential field value must be a string";
  return Object.fromEntries(entries) as Record<string, string>;
}

export function addAccountCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  const accounts = program.command("accounts").description("cloud accounts: connect, discover, and what they are subscribed to").option("-a, --address <host:port>", "dispatcher to call (default: client.address)");
  const run = groupRunner(accounts, configFile, setExit);
  const withJson = (c: Command) => c.option("--json", "JSON instead of a table", false);
  withJson(accounts.command("list").description("the accounts you may use").option("--cloud <id>", "only accounts of this cloud")).action((opts: { cloud?: string }, cmd: Command) =>
    run("accounts", async (c, io, o) => {
      const all = await allPages(async (pageToken) => {
        const page = await c.accounts.listAccounts({ pageSize: 1000, pageToken, cloudId: opts.cloud ?? "" });
        return { items: page.accounts, next: page.nextPageToken };
      });
      printAccounts(io, o, all);
    })(cmd),
  );
  withJson(accounts.command("get <id>").description("one account: status, validation, discovery (an id, or the name of one account, e.g. local)")).action((id: string, _o: unknown, cmd: Command) =>
    run("accounts", async (c, io, o) => {
      const a = (await c.accounts.getAccount({ id: await accountIdOf(c, id) })).account as Account;
      if (o.json) return io.out(json(Account.toJSON(a)));
      io.out(
        table(
          ["FIELD", "VALUE"],
          [["id", a.id], ["name", a.name], ["cloud", a.cloudId], ["status", statusName(a.status)], ["status message", a.statusMessage || "-"], ["provider account", a.providerAccountId || "-"], ["default budget code", a.defaultBudgetCode || "-"], ["credential id", a.credentialId], ["validated", time(a.validateTime)], ["discovered", time(a.discoverTime)], ["etag", a.etag]],
        ),
      );
    })(cmd),
  );
  withJson(
    accounts
      .command("connect")
      .description("connect an account (admins): its credentials go to KM, and a job validates them")
      .requiredOption("-n, --name <name>", "name (unique in the cloud)")
      .requiredOption("--cloud <id>", "the cloud the account belongs to")
      .requiredOption("-t, --credential-type <type>", "kind of credentials, e.g. aws-access-key")
      .option("-f, --credentials-file <path>", "JSON object of credential fields; - reads stdin", "-")
      .option("--budget-code <code>", "budget code launches use when they name none", ""),
  ).action((opts: { name: string; cloud: string; credentialType: string; credentialsFile: string; budgetCode: string }, cmd: Command) =>
    run("accounts", async (c, io, o) => {
      if (opts.credentialsFile === "-" && process.stdin.isTTY) io.err("reading the credentials as JSON from stdin (end with Ctrl-D)\n");
      const fields = parseCredentialFields(await readSecretInput(opts.credentialsFile));
      if (typeof fields === "string") {
        io.err(`dispatcher accounts connect: ${fields}\n`);
        return EXIT_USAGE;
      }
      const { account, validationJob } = await c.accounts.createAccount({ name: opts.name, cloudId: opts.cloud, defaultBudgetCode: opts.budgetCode, credentials: { type: opts.credentialType, fields } });
      if (o.json) return io.out(json({ account: Account.toJSON(account as Account), validationJob: validationJob ? Job.toJSON(validationJob) : null }));
      printAccounts(io, o, [account as Account]);
      io.err(`validation job ${validationJob?.id}: follow it with \`dispatcher jobs watch ${validationJob?.id}\`\n`);
    })(cmd),
  );
  withJson(accounts.command("discover <id>").description("validate and discover the account again now; prints the job").option("--idempotency-key <key>", "the same key returns the same job")).action(
    (id: string, opts: { idempotencyKey?: string }, cmd: Command) =>
      run("accounts", async (c, io, o) => {
        const job = (await c.accounts.discoverAccount({ id: await accountIdOf(c, id), idempotencyKey: opts.idempotencyKey ?? "" })).job as Job;
        if (o.json) io.out(json({ job: Job.toJSON(job) }));
        else io.out(`${job.id}\n`);
      })(cmd),
  );
  withJson(accounts.command("subscriptions <id>").description("the capabilities the account has, per region, as last discovered").option("--region <id>", "only this region")).action(
    (id: string, opts: { region?: string }, cmd: Command) =>
      run("accounts", async (c, io, o) => {
        const r = await c.accounts.listSubscriptions({ accountId: await accountIdOf(c, id), regionId: opts.region ?? "" });
        if (o.json) return io.out(json({ regions: r.regions.map((x) => ({ id: x.id, name: x.name, dataCenters: x.dataCenters })), subscriptions: r.subscriptions.map((s) => ({ regionId: s.regionId, capability: s.capability, discoverTime: s.discoverTime?.toISOString() })) }));
        const byRegion = r.regions.map((reg) => [reg.id, reg.name, r.subscriptions.filter((s) => s.regionId === reg.id).map((s) => s.capability).join(",") || "-"]);
        io.out(table(["REGION", "NAME", "CAPABILITIES"], byRegion));
      })(cmd),
  );
  withJson(accounts.command("events <id>").description("the account's history, oldest first")).action((name: string, _o: unknown, cmd: Command) =>
    run("accounts", async (c, io, o) => {
      const id = await accountIdOf(c, name);
      const all = await allPages(async (pageToken) => {
        const page = await c.accounts.listAccountEvents({ id, pageSize: 1000, pageToken });
        return { items: page.events, next: page.nextPageToken };
      });
      if (o.json) io.out(json({ events: all.map((e) => AccountEvent.toJSON(e)) }));
      else io.out(table(["TIME", "TYPE", "REGION", "JOB", "MESSAGE"], all.map((e) => [time(e.createTime), e.type, e.regionId || "-", e.jobId || "-", e.message])));
    })(cmd),
  );
}

