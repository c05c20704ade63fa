// Display helpers: times, durations, money and enum names, the same way on every page.

/** "JOB_STATE_RUNNING" → "RUNNING" for an enum value of a generated enum object. */
export function enumName(values: Record<string | number, string | number>, value: number, prefix: string): string {
  const name = values[value];
  return typeof name === "string" ? name.replace(prefix, "") : String(value);
}

export function time(d: Date | undefined): string {
  if (!d) return "—";
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

/** How long ago, briefly: "12 s ago", "5 min ago", "3 h ago", else the date. */
export function ago(d: Date | undefined, now = Date.now()): string {
  if (!d) return "—";
  const s = Math.round((now - d.getTime()) / 1000);
  if (s < 60) return `${Math.max(0, s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return d.toLocaleDateString();
}

export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "—";
  if (ms === 0) return "0";
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  return m < 60 ? `${m} min ${Math.round((ms % 60_000) / 1000)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function between(start: Date | undefined, end: Date | undefined, now = Date.now()): string {
  if (!start) return "—";
  return duration((end?.getTime() ?? now) - start.getTime());
}

export function cents(value: string | number): string {
  return (Number(value) / 100).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

export function micros(value: string | number): string {
  return (Number(value) / 1e6).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 4 });
}

/** The first characters of a long id, whole on hover. */
export function shortId(id: string): string {
  return id.length > 12 ? `${id.slice(0, 6)}…${id.slice(-4)}` : id;
}
