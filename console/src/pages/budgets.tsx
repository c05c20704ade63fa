// Budget usage: each budget code's spending against its quotas, the fleet's running cost, and this month's cost by
// budget code (analytics; the page says so when analytics is unavailable).
import { Badge, Empty, ErrorNote, PageHeader } from "../components/common";
import { useSession } from "../context";
import { cents, enumName, micros } from "../format";
import { BudgetCodeState, type BudgetCode } from "../gen/dispatcher/v1/provisioning";
import { UsageGrouping } from "../gen/dispatcher/v1/analytics";
import { useLoad } from "../hooks";

const REFRESH_MS = 30_000;

export function BudgetsPage() {
  const { clients } = useSession();
  const codes = useLoad((signal) => clients.budgets.listBudgetCodes({ pageSize: 1000 }, { signal }), [clients], REFRESH_MS);
  const fleet = useLoad((signal) => clients.analytics.fleetSummary({}, { signal }), [clients], REFRESH_MS);
  const usage = useLoad((signal) => clients.analytics.reportUsage({ groupBy: UsageGrouping.USAGE_GROUPING_BUDGET_CODE }, { signal }), [clients], REFRESH_MS);
  const monthByCode = new Map((usage.data?.rows ?? []).map((r) => [r.key, r]));

  return (
    <section>
      <PageHeader title="Budgets" />
      {fleet.data ? (
        <p class="summary">
          {fleet.data.servers} servers · {micros(fleet.data.hourlyCostMicros)} per hour now · {micros(fleet.data.monthToDateCostMicros)} this month
        </p>
      ) : (
        <ErrorNote error={fleet.error} />
      )}
      <ErrorNote error={codes.error} />
      {codes.data && codes.data.budgetCodes.length === 0 ? <Empty>No budget codes yet.</Empty> : null}
      {(codes.data?.budgetCodes.length ?? 0) > 0 ? (
        <table class="grid budgets">
          <thead>
            <tr>
              <th>Code</th>
              <th>Name</th>
              <th>State</th>
              <th>Usage against the hard quota</th>
              <th>Current</th>
              <th>Projected</th>
              <th>Soft / hard quota</th>
              <th>This month (accrued)</th>
            </tr>
          </thead>
          <tbody>
            {codes.data?.budgetCodes.map((b) => (
              <tr key={b.code} data-budget-code={b.code}>
                <td class="mono">{b.code}</td>
                <td>{b.name}</td>
                <td>
                  <Badge value={enumName(BudgetCodeState, b.state, "BUDGET_CODE_STATE_")} />
                </td>
                <td>
                  <UsageBar code={b} />
                </td>
                <td>{cents(b.currentUsageCents)}</td>
                <td>{cents(b.projectedUsageCents)}</td>
                <td>
                  {Number(b.softQuotaCents) > 0 ? cents(b.softQuotaCents) : "—"} / {cents(b.hardQuotaCents)}
                </td>
                <td>{monthByCode.has(b.code) ? cents(monthByCode.get(b.code)?.costCents ?? 0) : "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {usage.error ? <p class="muted">Monthly cost: {usage.error.message}</p> : null}
    </section>
  );
}

function UsageBar({ code }: { code: BudgetCode }) {
  const hard = Number(code.hardQuotaCents);
  if (hard <= 0) return <span class="muted">no hard quota</span>;
  const pct = (v: string): number => Math.min(100, (Number(v) / hard) * 100);
  const soft = Number(code.softQuotaCents) > 0 ? pct(code.softQuotaCents) : undefined;
  const used = pct(code.currentUsageCents);
  const level = used >= 100 ? "over" : soft !== undefined && used >= soft ? "warn" : "ok";
  return (
    <div class="usage" title={`${used.toFixed(1)}% used, ${pct(code.projectedUsageCents).toFixed(1)}% projected`}>
      <div class="usage-projected" style={{ width: `${pct(code.projectedUsageCents)}%` }} />
      <div class={`usage-used usage-${level}`} style={{ width: `${used}%` }} />
      {soft !== undefined ? <div class="usage-soft" style={{ left: `${soft}%` }} /> : null}
    </div>
  );
}
