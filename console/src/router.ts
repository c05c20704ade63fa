// Hash routing: #/jobs?state=FAILED, #/jobs/<id>, #/servers/<id>, #/queues, #/budgets. Filters live in the hash so that a view
// can be linked and reloaded; nothing secret ever goes there.
import { useEffect, useState } from "preact/hooks";

export interface Route {
  /** Path segments, e.g. ["jobs", "01J…"]. */
  parts: string[];
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#\/?/, "");
  const at = raw.indexOf("?");
  const path = at >= 0 ? raw.slice(0, at) : raw;
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(at >= 0 ? raw.slice(at + 1) : "") };
}

export function href(parts: string[], query?: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v) q.set(k, v);
  const qs = q.toString();
  return `#/${parts.map(encodeURIComponent).join("/")}${qs ? `?${qs}` : ""}`;
}

export function navigate(to: string): void {
  window.location.hash = to;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(window.location.hash));
  useEffect(() => {
    const onChange = (): void => setRoute(parseHash(window.location.hash));
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
