// The signed-in session: the API key the user typed, kept in this tab's sessionStorage (never in a URL, gone when the
// tab closes), and where the gRPC-Web bridge is (the console server's /config.json).
import type { Transport } from "./grpc-web";

const KEY = "dispatcher.console.apiKey";

export interface ConsoleSettings {
  /** The bridge's URL as configured (console.bridgeUrl), or "" for this page's host on bridgePort. */
  bridgeUrl: string;
  bridgePort: number;
}

export function storedKey(): string {
  return sessionStorage.getItem(KEY) ?? "";
}

export function storeKey(key: string): void {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey(): void {
  sessionStorage.removeItem(KEY);
}

export async function loadSettings(): Promise<ConsoleSettings> {
  const res = await fetch("/config.json", { cache: "no-store" });
  if (!res.ok) throw new Error(`the console server answered ${res.status} for its settings`);
  return (await res.json()) as ConsoleSettings;
}

/** The bridge's base URL: the configured one, or this page's host on the bridge's port. */
export function bridgeBaseUrl(settings: ConsoleSettings, location: Location = window.location): string {
  if (settings.bridgeUrl) return settings.bridgeUrl.replace(/\/+$/, "");
  return `${location.protocol}//${location.hostname}:${settings.bridgePort}`;
}

/** A transport that sends the stored key as a bearer token. */
export function transport(baseUrl: string, key: () => string): Transport {
  return { baseUrl, headers: () => ({ authorization: `Bearer ${key()}` }) };
}
