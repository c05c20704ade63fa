// A trace drawn as a waterfall: one row per span in tree order (children under their parent, by start time), a bar
// placed on the trace's time axis, coloured by what made it (RPC, relay, worker, driver, KM, agent, monitor); a click
// shows the span's attributes and events.
import { useState } from "preact/hooks";
import { duration } from "../format";
import { SpanKind, SpanStatusCode, type Span } from "../gen/dispatcher/v1/traces";

export type Category = "rpc" | "relay" | "worker" | "driver" | "km" | "agent" | "monitor" | "internal";

export const CATEGORY_LABELS: Record<Category, string> = {
  rpc: "RPC",
  relay: "relay",
  worker: "worker",
  driver: "driver",
  km: "KM",
  agent: "agent",
  monitor: "monitor",
  internal: "internal",
};

/** Which part of the system made a span, from its name, kind and gRPC service. */
export function categoryOf(span: Span): Category {
  const service = span.attributes["rpc.service"] ?? "";
  const name = span.name;
  if (name.startsWith("km.") || service.startsWith("km.v1")) return "km";
  if (service.startsWith("agent.v1") || service.endsWith("AgentRegistrationService") || name.startsWith("agent.")) return "agent";
  if (name.startsWith("driver.")) return "driver";
  if (name === "outbox.publish" || span.kind === SpanKind.SPAN_KIND_PRODUCER) return "relay";
  if (name.startsWith("job.check") || name.startsWith("monitor.")) return "monitor";
  if (span.kind === SpanKind.SPAN_KIND_CONSUMER || (name.startsWith("job.") && name !== "job.create")) return "worker";
  if (span.attributes["rpc.system"] === "grpc" || name === "job.create") return "rpc";
  return "internal";
}

interface Row {
  span: Span;
  depth: number;
  /** Its parent is not among the kept spans (dropped, or made by a process whose spans are not here). */
  orphan: boolean;
}

/** The spans in tree order with their depth. */
export function treeOrder(spans: Span[]): Row[] {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const children = new Map<string, Span[]>();
  const roots: Span[] = [];
  for (const s of spans) {
    if (s.parentSpanId && byId.has(s.parentSpanId)) {
      const list = children.get(s.parentSpanId) ?? [];
      list.push(s);
      children.set(s.parentSpanId, list);
    } else roots.push(s);
  }
  const start = (s: Span): number => s.startTime?.getTime() ?? 0;
  const rows: Row[] = [];
  const visit = (s: Span, depth: number): void => {
    rows.push({ span: s, depth, orphan: depth === 0 && s.parentSpanId !== "" });
    for (const c of (children.get(s.spanId) ?? []).sort((a, b) => start(a) - start(b))) visit(c, depth + 1);
  };
  for (const r of roots.sort((a, b) => start(a) - start(b))) visit(r, 0);
  return rows;
}

const ms = (s: Span): number => Number(s.durationMicros) / 1000;

export function Waterfall({ spans }: { spans: Span[] }) {
  const [selected, setSelected] = useState<string | undefined>(undefined);
  if (spans.length === 0) return null;
  const rows = treeOrder(spans);
  const t0 = Math.min(...spans.map((s) => s.startTime?.getTime() ?? 0));
  const t1 = Math.max(...spans.map((s) => (s.startTime?.getTime() ?? 0) + ms(s)));
  const total = Math.max(t1 - t0, 0.001);
  const present = [...new Set(rows.map((r) => categoryOf(r.span)))];
  const chosen = spans.find((s) => s.spanId === selected);

  return (
    <div class="waterfall" data-testid="waterfall">
      <div class="legend">
        {present.map((c) => (
          <span class={`chip cat-${c}`}>{CATEGORY_LABELS[c]}</span>
        ))}
        <span class="muted">
          {spans.length} spans over {duration(total)}
        </span>
      </div>
      <div class="axis">
        <span />
        <div class="ticks">
          {[0, 0.25, 0.5, 0.75, 1].map((f) => (
            <span style={{ left: `${f * 100}%` }}>{duration(total * f)}</span>
          ))}
        </div>
      </div>
      {rows.map(({ span, depth, orphan }) => {
        const category = categoryOf(span);
        const left = Math.min((((span.startTime?.getTime() ?? t0) - t0) / total) * 100, 99.75);
        const width = Math.min(Math.max((ms(span) / total) * 100, 0.25), 100 - left);
        // The duration goes after the bar, or before it when the bar ends near the right edge.
        const late = left + width > 85;
        const error = span.statusCode === SpanStatusCode.SPAN_STATUS_CODE_ERROR;
        return (
          <div
            key={span.spanId}
            class={`span-row${span.spanId === selected ? " selected" : ""}${error ? " failed" : ""}`}
            data-category={category}
            data-span-name={span.name}
            onClick={() => setSelected(span.spanId === selected ? undefined : span.spanId)}
          >
            <div class="span-label" style={{ paddingLeft: `${depth * 14 + 4}px` }} title={span.name}>
              <span class={`chip cat-${category}`}>{CATEGORY_LABELS[category]}</span>
              {orphan ? <span class="muted" title="its parent span is not among the kept spans">↳ </span> : null}
              {span.name}
            </div>
            <div class="span-track">
              <div class={`span-bar cat-${category}`} style={{ left: `${left}%`, width: `${width}%` }} />
              <span class={`span-time${late ? " before" : ""}`} style={late ? { right: `${100 - left}%` } : { left: `${left + width}%` }}>
                {duration(ms(span))}
              </span>
            </div>
          </div>
        );
      })}
      {chosen ? <SpanDetails span={chosen} t0={t0} /> : <p class="muted">Click a span for its attributes and events.</p>}
    </div>
  );
}

function SpanDetails({ span, t0 }: { span: Span; t0: number }) {
  const attributes = Object.entries(span.attributes).sort(([a], [b]) => a.localeCompare(b));
  return (
    <div class="span-details" data-testid="span-details">
      <h3>{span.name}</h3>
      <p class="muted">
        {SpanKind[span.kind]?.replace("SPAN_KIND_", "").toLowerCase()} · {span.service} · {span.scope} · starts at +{duration((span.startTime?.getTime() ?? t0) - t0)} · {duration(ms(span))}
        {span.statusCode === SpanStatusCode.SPAN_STATUS_CODE_ERROR ? ` · error: ${span.statusMessage}` : ""}
      </p>
      <table class="kv">
        <tbody>
          {attributes.map(([k, v]) => (
            <tr>
              <th>{k}</th>
              <td class="mono">{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {span.events.length > 0 ? (
        <ul class="events">
          {span.events.map((e) => (
            <li>
              +{duration((e.time?.getTime() ?? t0) - t0)} <strong>{e.name}</strong>{" "}
              <span class="mono">
                {Object.entries(e.attributes)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(" ")}
              </span>
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}
