// Small pieces every page uses: state badges, error and empty notes, the page header.
import type { ComponentChildren } from "preact";
import type { RpcError } from "../api/grpc-web";

/**
 * A state as a coloured badge; the colour follows the state's name (RUNNING, FAILED, CONNECTED …), within `scope`
 * where one name means different things (a RUNNING server is where it should be, a RUNNING job is under way).
 */
export function Badge({ value, scope }: { value: string; scope?: string }) {
  const name = value.toLowerCase();
  return <span class={`badge badge-${name}${scope ? ` badge-${scope}-${name}` : ""}`}>{value}</span>;
}

export function ErrorNote({ error }: { error: RpcError | undefined }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error.codeName}: {error.message}
    </p>
  );
}

export function PageHeader({ title, children }: { title: ComponentChildren; children?: ComponentChildren }) {
  return (
    <div class="page-header">
      <h1>{title}</h1>
      <div class="page-actions">{children}</div>
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}
