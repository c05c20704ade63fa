// KM's settings resolved from the configuration, for the KM role and for its clients: master and channel keys, TLS
// files (development defaults under <dataDir>/tls), client principals. Problems become one ConfigError (exit 2).
import { existsSync } from "node:fs";
import { isIP } from "node:net";
import type { ChannelCredentials, ServerCredentials } from "@grpc/grpc-js";
import { ConfigError, type Config } from "../config.js";
import { devPaths, ensureDevCerts, ensureDevKeyFile } from "./dev-files.js";
import { kmClientCredentials, kmServerCredentials, parseClientPrincipals, plaintextIdentityToken, type ClientPrincipals, type TlsFiles } from "./identity.js";
import { KeyConfigError, keyText, parseKeyring, type Keyring } from "./keys.js";

const GENERATE_HINT = "generate one with `dispatcher km generate-key`";

export interface KmServerSettings {
  masterKeys: Keyring;
  channelKeys: Keyring;
  transport: { kind: "tls"; credentials: ServerCredentials } | { kind: "plaintext" };
  principals: ClientPrincipals;
  auditFile: string;
  /** Things an operator must hear at start (plaintext transport, development keys). */
  warnings: string[];
}

export interface KmClientSettings {
  address: string;
  channelKeys: Keyring;
  transport: { kind: "tls"; credentials: ChannelCredentials; serverName?: string } | { kind: "plaintext"; token: string };
  warnings: string[];
}

/** Everything the KM role needs, or a ConfigError listing every problem. */
export function kmServerSettings(config: Config): KmServerSettings {
  const problems: string[] = [];
  const warnings: string[] = [];
  const masterKeys = attempt(problems, () => loadMasterKeys(config));
  const channel = attempt(problems, () => loadChannelKeys(config));
  if (channel) warnings.push(...channel.warnings);
  const { map: principals, problems: principalProblems } = parseClientPrincipals(config.km.clientPrincipals);
  problems.push(...principalProblems);
  if (masterKeys && channel) {
    for (const v of masterKeys.versions) {
      for (const c of channel.keys.versions) {
        if (masterKeys.key(v)?.equals(channel.keys.key(c) as Buffer)) problems.push(`encryption.masterKeys version ${v} equals encryption.kmChannelKey version ${c}: use separate keys`);
      }
    }
  }
  let transport: KmServerSettings["transport"] | undefined;
  if (config.km.plaintext) {
    transport = { kind: "plaintext" };
    warnings.push("KM serves WITHOUT TLS (km.plaintext, development mode): callers are not authenticated by certificate and traffic is readable on the network");
  } else {
    const d = devPaths(config.dataDir);
    const files = tlsFiles(config, problems, { ca: ["km.tlsCa", config.km.tlsCa, d.ca], cert: ["km.serverCert", config.km.serverCert, d.serverCert], key: ["km.serverKey", config.km.serverKey, d.serverKey] });
    if (files) transport = { kind: "tls", credentials: attempt(problems, () => kmServerCredentials(files)) as ServerCredentials };
  }
  if (problems.length > 0 || !masterKeys || !channel || !transport) throw new ConfigError(problems);
  return { masterKeys, channelKeys: channel.keys, transport, principals, auditFile: config.km.auditFile, warnings };
}

/**
 * What a KM client needs. `identity` names the development client certificate (<dataDir>/tls/<identity>.pem) when
 * km.tlsCert is unset, and the asserted identity in plaintext mode.
 */
export function kmClientSettings(config: Config, identity: string): KmClientSettings {
  const problems: string[] = [];
  const channel = attempt(problems, () => loadChannelKeys(config));
  let transport: KmClientSettings["transport"] | undefined;
  const warnings = channel?.warnings ?? [];
  if (config.km.plaintext) {
    if (channel) transport = { kind: "plaintext", token: plaintextIdentityToken(channel.keys, identity) };
    warnings.push(`KM is called WITHOUT TLS (km.plaintext, development mode) as ${identity}`);
  } else {
    const d = devPaths(config.dataDir);
    const files = tlsFiles(config, problems, { ca: ["km.tlsCa", config.km.tlsCa, d.ca], cert: ["km.tlsCert", config.km.tlsCert, d.clientCert(identity)], key: ["km.tlsKey", config.km.tlsKey, d.clientKey(identity)] });
    if (files) {
      const credentials = attempt(problems, () => kmClientCredentials(files)) as ChannelCredentials;
      // The development server certificate names localhost: use that name for an IP target (Node refuses IPs as SNI).
      const serverName = config.km.serverName || (!config.km.tlsCa && config.mode === "development" && isIP(hostOf(config.km.url)) ? "localhost" : "");
      transport = { kind: "tls", credentials, ...(serverName ? { serverName } : {}) };
    }
  }
  if (problems.length > 0 || !channel || !transport) throw new ConfigError(problems);
  return { address: config.km.url, channelKeys: channel.keys, transport, warnings };
}

/** The master keyring (encryption.masterKeys or encryption.masterKeysFile); KM refuses to start without one. */
export function loadMasterKeys(config: Config): Keyring {
  const text = keyText(config.encryption.masterKeys, config.encryption.masterKeysFile, "encryption.masterKeys");
  if (text === undefined) {
    throw new KeyConfigError(`encryption.masterKeys is not set: KM refuses to start without a master key; ${GENERATE_HINT} and set DISPATCHER_ENCRYPTION_MASTER_KEYS=<version>:<key> (or encryption.masterKeysFile)`);
  }
  try {
    return parseKeyring(text, "encryption.masterKeys");
  } catch (err) {
    throw new KeyConfigError(`${(err as Error).message}; ${GENERATE_HINT}`);
  }
}

/** The channel keyring; in development mode a key is generated under <dataDir>/km when none is configured. */
export function loadChannelKeys(config: Config): { keys: Keyring; warnings: string[] } {
  let text = keyText(config.encryption.kmChannelKey, config.encryption.kmChannelKeyFile, "encryption.kmChannelKey");
  const warnings: string[] = [];
  if (text === undefined) {
    if (config.mode !== "development") throw new KeyConfigError(`encryption.kmChannelKey is not set: production requires the KM channel key, shared by KM and its clients; ${GENERATE_HINT}`);
    const path = devPaths(config.dataDir).channelKey;
    const file = ensureDevKeyFile(path);
    text = file.text;
    warnings.push(`${file.created ? "generated" : "using"} a development KM channel key at ${path} (encryption.kmChannelKey is unset); production requires it to be set`);
  }
  return { keys: parseKeyring(text, "encryption.kmChannelKey", { allowBare: true }), warnings };
}

/**
 * The quick start (`dispatcher start` in development mode): writes what KM needs when it is not configured — the
 * development CA and certificates under <dataDir>/tls and a master key under <dataDir>/km — and points the
 * configuration at them. Returns what it did, for the operator. Does nothing in production.
 */
export function prepareDevelopmentKm(config: Config): string[] {
  if (config.mode !== "development") return [];
  const notes: string[] = [];
  const d = devPaths(config.dataDir);
  if (!config.km.plaintext && !config.km.tlsCa && !config.km.serverCert) {
    const { written } = ensureDevCerts(config.dataDir);
    if (written.length > 0) notes.push(`wrote development KM certificates under ${d.tlsDir}`);
  }
  if (!config.encryption.masterKeys.trim() && !config.encryption.masterKeysFile.trim()) {
    const { created } = ensureDevKeyFile(d.masterKeys);
    config.encryption.masterKeysFile = d.masterKeys;
    notes.push(`${created ? "generated" : "using"} a DEVELOPMENT master key at ${d.masterKeys}; production must set encryption.masterKeys`);
  }
  return notes;
}

function tlsFiles(config: Config, problems: string[], spec: Record<keyof TlsFiles, [setting: string, value: string, devDefault: string]>): TlsFiles | undefined {
  const out: Partial<TlsFiles> = {};
  for (const [part, [setting, value, devDefault]] of Object.entries(spec) as [keyof TlsFiles, [string, string, string]][]) {
    const path = value || (config.mode === "development" ? devDefault : "");
    if (!path) problems.push(`${setting} is not set: KM's channel is mutual TLS (set km.tlsCa, km.serverCert/km.serverKey on KM, km.tlsCert/km.tlsKey on its clients)`);
    else if (!existsSync(path)) problems.push(`${setting}: ${path} does not exist${value ? "" : "; run `dispatcher km dev-certs` to write development certificates"}`);
    else out[part] = path;
  }
  return out.ca && out.cert && out.key ? (out as TlsFiles) : undefined;
}

/** The host of a host:port target ("[::1]:2013" → "::1"). */
function hostOf(target: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(target) ?? /^([^:]+)(?::\d+)?$/.exec(target);
  return m?.[1] ?? target;
}

function attempt<T>(problems: string[], fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ConfigError) problems.push(...err.problems);
    else problems.push(err instanceof Error ? err.message : String(err));
    return undefined;
  }
}
