// --account takes an id or the name of exactly one account the caller can see (src/commands/client-command.ts).
import { describe, expect, it } from "vitest";
import type { DispatcherClients } from "../../src/client/types.js";
import { accountIdOf, CommandInputError, optionalAccountIdOf } from "../../src/commands/client-command.js";

const A = "01JDQ3Z5K8W8G4QF2Q6N2D7M9T";
const B = "01JDQ3Z5K8W8G4QF2Q6N2D7M9V";
const C = "01JDQ3Z5K8W8G4QF2Q6N2D7M9W";

/** Accounts served two to a page, counting the list calls. */
function clientsWith(accounts: { id: string; name: string }[]): { c: DispatcherClients; calls: () => number } {
  let calls = 0;
  const listAccounts = ({ pageToken }: { pageToken: string }) => {
    calls++;
    const at = pageToken ? Number(pageToken) : 0;
    const next = at + 2 < accounts.length ? String(at + 2) : "";
    return Promise.resolve({ accounts: accounts.slice(at, at + 2), nextPageToken: next });
  };
  return { c: { accounts: { listAccounts } } as unknown as DispatcherClients, calls: () => calls };
}

describe("an account named on the command line", () => {
  const accounts = [
    { id: A, name: "local" },
    { id: B, name: "prod" },
    { id: C, name: "prod" },
  ];

  it("is taken as an id without a call when it is shaped like one", async () => {
    const { c, calls } = clientsWith(accounts);
    expect(await accountIdOf(c, B)).toBe(B);
    expect(calls()).toBe(0);
  });

  it("is found by its name across pages", async () => {
    const { c, calls } = clientsWith([...accounts.slice(1, 3).map((a, i) => ({ ...a, name: `other-${i}` })), { id: A, name: "local" }]);
    expect(await accountIdOf(c, "local")).toBe(A);
    expect(calls()).toBe(2);
  });

  it("is refused with the ids to choose from when several accounts have the name", async () => {
    const { c } = clientsWith(accounts);
    const err = await accountIdOf(c, "prod").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandInputError);
    expect((err as Error).message).toBe(`2 accounts are named "prod" (${B}, ${C}): give the id`);
  });

  it("is refused when no visible account has the name (a list filtered by it would come back empty)", async () => {
    const { c } = clientsWith(accounts);
    const err = await accountIdOf(c, "staging").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandInputError);
    expect((err as Error).message).toBe('no account you can see is named "staging" (`dispatcher accounts list` shows them)');
  });

  it("is every account in scope when the option is absent", async () => {
    const { c, calls } = clientsWith(accounts);
    expect(await optionalAccountIdOf(c, undefined)).toBe("");
    expect(await optionalAccountIdOf(c, "")).toBe("");
    expect(calls()).toBe(0);
    expect(await optionalAccountIdOf(c, "local")).toBe(A);
  });
});
