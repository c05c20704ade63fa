// `dispatcher budgets list|get|create|update|delete|grant|revoke`: budget codes (quotas in cents, state, holders)
// through the dispatcher's API.
import { InvalidArgumentError as CommanderInvalidArgument, type Command } from "commander";
import { BudgetCode, BudgetCodeState, budgetCodeStateToJSON } from "../gen/proto/dispatcher/v1/provisioning.js";
import { json, money, table, userIdOf, type ClientCommandOptions, type CommandIo } from "./client-command.js";
import { allPages, groupRunner } from "./clouds.js";

const stateName = (s: BudgetCodeState): string => budgetCodeStateToJSON(s).replace("BUDGET_CODE_STATE_", "").toLowerCase();

function parseState(value: string): BudgetCodeState {
  if (value === "active") return BudgetCodeState.BUDGET_CODE_STATE_ACTIVE;
  if (value === "disabled") return BudgetCodeState.BUDGET_CODE_STATE_DISABLED;
  throw new CommanderInvalidArgument("active or disabled");
}

/** Cents as the API takes them: a whole number, as a decimal string (the API checks the range). */
function parseCents(value: string): string {
  if (!/^\d{1,19}$/.test(value)) throw new CommanderInvalidArgument("a whole number of cents");
  return value;
}

/** "1000.00 (100000 cents)": amounts are in the accounts' currency, entered in cents. */
const inCents = (cents: string): string => `${money(cents)} (${cents} cents)`;

function printBudgets(io: CommandIo, o: ClientCommandOptions, codes: BudgetCode[]): void {
  if (o.json) io.out(json({ budgetCodes: codes.map((b) => BudgetCode.toJSON(b)) }));
  else io.out(table(["CODE", "NAME", "STATE", "HARD QUOTA", "SOFT QUOTA", "USAGE", "FINANCE", "HOLDERS"], codes.map((b) => [b.code, b.name, stateName(b.state), money(b.hardQuotaCents), money(b.softQuotaCents), money(b.currentUsageCents), b.financeCode || "-", b.userIds.join(",") || "-"])));
}

export function addBudgetCommands(program: Command, configFile: () => string | undefined, setExit: (code: number) => void): void {
  const budgets = program.command("budgets").description("budget codes: quotas (in cents), state and who may spend on them").option("-a, --address <host:port>", "dispatcher to call (default: client.address)");
  const run = groupRunner(budgets, configFile, setExit);
  const withJson = (c: Command) => c.option("--json", "JSON instead of a table", false);
  withJson(budgets.command("list").description("every budget code").option("--state <state>", "active or disabled", parseState)).action((opts: { state?: BudgetCodeState }, cmd: Command) =>
    run("budgets", async (c, io, o) => {
      const all = await allPages(async (pageToken) => {
        const page = await c.budgetCodes.listBudgetCodes({ pageSize: 1000, pageToken, state: opts.state ?? BudgetCodeState.BUDGET_CODE_STATE_UNSPECIFIED });
        return { items: page.budgetCodes, next: page.nextPageToken };
      });
      printBudgets(io, o, all);
    })(cmd),
  );
  withJson(budgets.command("get <code>").description("one budget code with its holders and etag")).action((code: string, _o: unknown, cmd: Command) =>
    run("budgets", async (c, io, o) => {
      const b = (await c.budgetCodes.getBudgetCode({ code })).budgetCode as BudgetCode;
      if (o.json) return io.out(json(BudgetCode.toJSON(b)));
      io.out(
        table(
          ["FIELD", "VALUE"],
          [["code", b.code], ["name", b.name], ["finance code", b.financeCode || "-"], ["state", stateName(b.state)], ["hard quota", inCents(b.hardQuotaCents)], ["soft quota", inCents(b.softQuotaCents)], ["usage", inCents(b.currentUsageCents)], ["projected", inCents(b.projectedUsageCents)], ["holders", b.userIds.join(",") || "-"], ["etag", b.etag]],
        ),
      );
    })(cmd),
  );
  withJson(
    budgets
      .command("create <code>")
      .description("create a budget code")
      .requiredOption("-n, --name <name>", "what the code is for")
      .requiredOption("--hard <cents>", "hard quota in cents: spending past it is refused", parseCents)
      .option("--soft <cents>", "soft quota in cents: spending past it is allowed with a warning (0: none)", parseCents, "0")
      .option("--finance-code <code>", "the finance department's code", "")
      .option("--state <state>", "active or disabled", parseState),
  ).action((code: string, opts: { name: string; hard: string; soft: string; financeCode: string; state?: BudgetCodeState }, cmd: Command) =>
    run("budgets", async (c, io, o) => {
      const { budgetCode } = await c.budgetCodes.createBudgetCode({ code, name: opts.name, financeCode: opts.financeCode, hardQuotaCents: opts.hard, softQuotaCents: opts.soft, state: opts.state ?? BudgetCodeState.BUDGET_CODE_STATE_UNSPECIFIED });
      printBudgets(io, o, [budgetCode as BudgetCode]);
    })(cmd),
  );
  withJson(
    budgets
      .command("update <code>")
      .description("change a budget code's name, finance code, quotas or state")
      .option("-n, --name <name>", "new name")
      .option("--hard <cents>", "new hard quota in cents", parseCents)
      .option("--soft <cents>", "new soft quota in cents", parseCents)
      .option("--finance-code <code>", "new finance code")
      .option("--state <state>", "active or disabled", parseState)
      .option("--etag <etag>", "fail (ABORTED) if the code changed since this etag was read"),
  ).action((code: string, opts: { name?: string; hard?: string; soft?: string; financeCode?: string; state?: BudgetCodeState; etag?: string }, cmd: Command) =>
    run("budgets", async (c, io, o) => {
      const updateMask = [
        ...(opts.name !== undefined ? ["name"] : []),
        ...(opts.financeCode !== undefined ? ["finance_code"] : []),
        ...(opts.hard !== undefined ? ["hard_quota_cents"] : []),
        ...(opts.soft !== undefined ? ["soft_quota_cents"] : []),
        ...(opts.state !== undefined ? ["state"] : []),
      ];
      const { budgetCode } = await c.budgetCodes.updateBudgetCode({
        code,
        etag: opts.etag ?? "",
        updateMask,
        name: opts.name ?? "",
        financeCode: opts.financeCode ?? "",
        hardQuotaCents: opts.hard ?? "0",
        softQuotaCents: opts.soft ?? "0",
        state: opts.state ?? BudgetCodeState.BUDGET_CODE_STATE_UNSPECIFIED,
      });
      printBudgets(io, o, [budgetCode as BudgetCode]);
    })(cmd),
  );
  budgets
    .command("delete <code>")
    .description("delete a budget code; one in use needs --replacement, which takes over its holders and accounts")
    .option("--replacement <code>", "budget code that takes over the holders and account defaults")
    .option("--etag <etag>", "fail (ABORTED) if the code changed since this etag was read")
    .action((code: string, opts: { replacement?: string; etag?: string }, cmd: Command) =>
      run("budgets", async (c, io) => {
        await c.budgetCodes.deleteBudgetCode({ code, etag: opts.etag ?? "", replacementCode: opts.replacement ?? "" });
        io.out(`${code} deleted\n`);
      })(cmd),
    );
  withJson(budgets.command("grant <code> <user-id>").description("let a user spend on the code (admins); `me` is you")).action((code: string, userId: string, _o: unknown, cmd: Command) =>
    run("budgets", async (c, io, o) => printBudgets(io, o, [(await c.budgetCodes.grantBudgetCode({ code, userId: await userIdOf(c, userId) })).budgetCode as BudgetCode]))(cmd),
  );
  withJson(budgets.command("revoke <code> <user-id>").description("stop a user spending on the code (admins); `me` is you")).action((code: string, userId: string, _o: unknown, cmd: Command) =>
    run("budgets", async (c, io, o) => printBudgets(io, o, [(await c.budgetCodes.revokeBudgetCode({ code, userId: await userIdOf(c, userId) })).budgetCode as BudgetCode]))(cmd),
  );
}
