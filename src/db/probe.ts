// A database probe for health: one connection of its own (so a busy pool never makes a live database look dead), one
// `SELECT 1` per call; a failed probe drops the connection and the next one connects afresh. A Galera node outside the
// primary component refuses the SELECT (1047), so it counts as down as a stopped server does.
import type { Connection } from "mariadb";
import { openConnection } from "./connect.js";

export interface DatabaseProbe {
  /** Resolves when the database answered; throws (UnavailableError or the driver's error) otherwise. */
  probe(): Promise<void>;
  close(): Promise<void>;
}

export function createDatabaseProbe(url: string): DatabaseProbe {
  let conn: Connection | undefined;
  let closed = false;
  const drop = (): void => {
    const c = conn;
    conn = undefined;
    c?.destroy();
  };
  return {
    async probe() {
      if (closed) throw new Error("probe closed");
      try {
        conn ??= await openConnection(url);
        if (closed) return drop();
        await conn.query("SELECT 1");
      } catch (err) {
        drop();
        throw err;
      }
    },
    async close() {
      closed = true;
      const c = conn;
      conn = undefined;
      await c?.end().catch(() => c.destroy());
    },
  };
}
