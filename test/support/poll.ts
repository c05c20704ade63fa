// Waiting in tests: poll a condition until it holds or a deadline passes — never sleep and hope.

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `check` (sync or async) every 25 ms until it returns a truthy value, and resolves with that value; after
 * `timeoutMs` fails with a message that says what was awaited and, through `detail`, where things stood.
 */
export async function until<T>(check: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs: number, what: string, detail: () => string = () => ""): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? ` ${detail()}` : ""}`);
    await sleep(25);
  }
}
