// proto ⇄ domain for the provisioning services, and the field rules their handlers validate requests with.
import { type BudgetCode, BudgetCodeState, type Cloud, type Region as RegionMessage } from "../gen/proto/dispatcher/v1/provisioning.js";
import type { Violations } from "../rpc/validate.js";
import type { BudgetCodeView, BudgetState } from "./budgets/service.js";
import type { CloudView, Region } from "./clouds/service.js";

export const CLOUD_NAME_RULES = { max: 128, pattern: /^[\p{L}\p{N}][\p{L}\p{N} _.-]*$/u, patternHint: "letters, digits, space, _ . - (starting with a letter or digit)" };
export const DRIVER_RULES = { max: 64, pattern: /^[a-z][a-z0-9_-]*$/, patternHint: "lower-case letters, digits, _ and - (starting with a letter)" };
export const REGION_ID_RULES = { max: 64, pattern: /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/, patternHint: "letters, digits, _ . : - (starting with a letter or digit)" };
export const PRINTABLE_RULES = { max: 255, pattern: /^[^\p{Cc}]+$/u, patternHint: "printable characters only" };
export const DATA_CENTER_RULES = { max: 128, pattern: /^[^\p{Cc}]+$/u, patternHint: "printable characters only" };
export const BUDGET_CODE_RULES = { max: 64, pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]*$/, patternHint: "letters, digits, _ . - (starting with a letter or digit)" };
export const FINANCE_CODE_RULES = { max: 64, min: 0, pattern: /^[A-Za-z0-9_./-]*$/, patternHint: "letters, digits, _ . / - only" };
/** An endpoint is checked in full by the cloud service (SSRF guard); here only its size. */
export const ENDPOINT_RULES = { max: 2048 };
const MAX_REGIONS = 256;
const MAX_DATA_CENTERS = 64;
/** 10^15 cents: far above any real budget, far below int64 and JavaScript's exact integers. */
export const MAX_CENTS = 1_000_000_000_000_000n;

export const BUDGET_STATE: Readonly<Partial<Record<number, BudgetState>>> = {
  [BudgetCodeState.BUDGET_CODE_STATE_ACTIVE]: "ACTIVE",
  [BudgetCodeState.BUDGET_CODE_STATE_DISABLED]: "DISABLED",
};

/** Regions with unique ids, each field within its rules. */
export function regionList(v: Violations, field: string, values: RegionMessage[]): Region[] {
  if (values.length > MAX_REGIONS) {
    v.add(field, `at most ${MAX_REGIONS} entries`);
    return [];
  }
  const seen = new Set<string>();
  return values.map((r, i) => {
    const id = v.string(`${field}[${i}].id`, r.id, REGION_ID_RULES);
    if (id !== "" && seen.has(id)) v.add(`${field}[${i}].id`, "duplicate region id");
    seen.add(id);
    const name = r.name === "" ? id : v.string(`${field}[${i}].name`, r.name, PRINTABLE_RULES);
    const dcs = r.dataCenters ?? [];
    if (dcs.length > MAX_DATA_CENTERS) v.add(`${field}[${i}].data_centers`, `at most ${MAX_DATA_CENTERS} entries`);
    const dataCenters = [...new Set(dcs.slice(0, MAX_DATA_CENTERS).map((d, j) => v.string(`${field}[${i}].data_centers[${j}]`, d, DATA_CENTER_RULES)))];
    return { id, name, dataCenters };
  });
}

/** An amount in cents (int64 as a decimal string) from 0 to MAX_CENTS. */
export function cents(v: Violations, field: string, value: string | undefined, min = 0n): bigint {
  const s = value ?? "0";
  if (!/^-?\d{1,19}$/.test(s)) {
    v.add(field, "must be an integer number of cents");
    return 0n;
  }
  const n = BigInt(s);
  if (n < min || n > MAX_CENTS) {
    v.add(field, `must be from ${min} to ${MAX_CENTS} cents`);
    return 0n;
  }
  return n;
}

export function cloudToProto(c: CloudView): Cloud {
  return { id: c.id, name: c.name, driver: c.driver, endpoint: c.endpoint, regions: c.regions.map((r) => ({ id: r.id, name: r.name, dataCenters: r.dataCenters })), etag: c.etag, createTime: c.createdAt, updateTime: c.updatedAt };
}

export function budgetCodeToProto(b: BudgetCodeView): BudgetCode {
  return {
    code: b.code,
    name: b.name,
    financeCode: b.financeCode,
    hardQuotaCents: b.hardQuotaCents.toString(),
    softQuotaCents: b.softQuotaCents.toString(),
    state: b.state === "DISABLED" ? BudgetCodeState.BUDGET_CODE_STATE_DISABLED : BudgetCodeState.BUDGET_CODE_STATE_ACTIVE,
    currentUsageCents: b.currentUsageCents.toString(),
    projectedUsageCents: b.projectedUsageCents.toString(),
    userIds: b.userIds,
    etag: b.etag,
    createTime: b.createdAt,
    updateTime: b.updatedAt,
  };
}
