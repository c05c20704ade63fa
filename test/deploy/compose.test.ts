// deploy/compose.yaml cannot be run here (no Docker), so its shape is checked instead: it parses (merge keys
// resolved), every DISPATCHER_* variable is a configuration field that loads, KM runs on its own database user and
// database with keys from secret files and mounted certificates, the roles that call KM are pointed at it, and every
// role runs a command of the image's compiled program with a health check that fits what it serves.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { FIELDS, loadConfig } from "../../src/config.js";
import { ROOT } from "../support/process.js";

interface Service {
  build?: unknown;
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  secrets?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
}

interface Compose {
  services: Record<string, Service>;
  secrets?: Record<string, { file: string }>;
  volumes?: Record<string, unknown>;
}

const DEPLOY = join(ROOT, "deploy");
// Compose fills ${NAME:?…} from the environment (or deploy/.env); here stand-in values.
const STAND_IN: Record<string, string> = { KM_DB_PASSWORD: "pw", AGENT_CREDENTIAL_KEY: Buffer.alloc(32, 7).toString("base64") };
const text = readFileSync(join(DEPLOY, "compose.yaml"), "utf8").replace(/\$\{(\w+):\?[^}]*\}/g, (_, name: string) => STAND_IN[name] ?? "");
const compose = parse(text, { merge: true }) as Compose;
const services = compose.services;
const env = (name: string): Record<string, string> => services[name]?.environment ?? {};
const mountedAt = (s: Service, path: string): boolean => (s.volumes ?? []).some((v) => path.startsWith(`${v.split(":")[1] ?? "\0"}/`));
const kmClients = ["dispatcher", "worker", "monitor"];

describe("deploy/compose.yaml", () => {
  it("parses; every service has an image or a build; every DISPATCHER_* variable is a configuration field", () => {
    const known = new Set(FIELDS.map((f) => f.env));
    expect(Object.keys(services)).toEqual(expect.arrayContaining(["mariadb", "nats", "migrate", "km", ...kmClients]));
    for (const [name, s] of Object.entries(services)) {
      expect(s.image ?? s.build, name).toBeTruthy();
      const vars = Object.keys(s.environment ?? {}).filter((k) => k.startsWith("DISPATCHER_"));
      for (const v of vars) expect(known.has(v), `${name}: ${v}`).toBe(true);
      // The values load (types, URLs, ports); files are read only by the roles.
      if (vars.length > 0) expect(() => loadConfig(s.environment ?? {}, ""), name).not.toThrow();
      for (const dep of Object.keys(s.depends_on ?? {})) expect(services[dep], `${name} depends on ${dep}`).toBeDefined();
    }
  });

  it("km: only its own database (own user, own database), master and channel keys from secret files, mTLS certificates mounted", () => {
    const km = services.km as Service;
    const e = env("km");
    expect(km.command).toEqual(["serve", "--role", "km"]);
    expect(e.DISPATCHER_MODE).toBe("production");
    const url = new URL(e.DISPATCHER_KM_DATABASE_URL ?? "");
    expect(url.username).toBe("km");
    expect(url.pathname).toBe("/km_credentials");
    // Not one of the dispatcher user's databases (mariadb-init.sql grants `dispatcher\_%`).
    expect(url.pathname.slice(1).startsWith("dispatcher_")).toBe(false);
    expect(readFileSync(join(DEPLOY, "mariadb-init-km.sh"), "utf8")).toMatch(/GRANT ALL PRIVILEGES ON km_credentials\.\* TO 'km'@'%'/);
    expect(services.mariadb?.volumes).toContain("./mariadb-init-km.sh:/docker-entrypoint-initdb.d/20-km.sh:ro");
    expect(e.DISPATCHER_ENCRYPTION_MASTER_KEYS).toBeUndefined();
    expect(e.DISPATCHER_ENCRYPTION_MASTER_KEYS_FILE).toBe("/run/secrets/km_master_keys");
    expect(e.DISPATCHER_ENCRYPTION_KM_CHANNEL_KEY_FILE).toBe("/run/secrets/km_channel_key");
    expect(km.secrets).toEqual(expect.arrayContaining(["km_master_keys", "km_channel_key"]));
    for (const secret of km.secrets ?? []) expect(compose.secrets?.[secret]?.file, secret).toBeTruthy();
    for (const v of ["DISPATCHER_KM_TLS_CA", "DISPATCHER_KM_SERVER_CERT", "DISPATCHER_KM_SERVER_KEY"]) expect(mountedAt(km, e[v] ?? ""), v).toBe(true);
    // Neither the provisioning database nor NATS: KM starts without them.
    expect(e.DISPATCHER_PROVISIONING_URL).toBeUndefined();
    expect(e.DISPATCHER_MQ_URL).toBeUndefined();
    expect(Object.keys(km.depends_on ?? {})).toEqual(["mariadb"]);
    expect(km.healthcheck?.test?.join(" ")).toContain("2013");
  });

  it("dispatcher, worker and monitor call KM over mTLS with their own certificate and the channel key; none reaches KM's database", () => {
    for (const name of kmClients) {
      const s = services[name] as Service;
      const e = env(name);
      expect(e.DISPATCHER_KM_URL, name).toBe("km:2013");
      expect(e.DISPATCHER_KM_DATABASE_URL, name).toBeUndefined();
      expect(e.DISPATCHER_PROVISIONING_URL, name).toBeTruthy();
      expect(e.DISPATCHER_ENCRYPTION_KM_CHANNEL_KEY_FILE, name).toBe("/run/secrets/km_channel_key");
      expect(s.secrets, name).toContain("km_channel_key");
      for (const v of ["DISPATCHER_KM_TLS_CA", "DISPATCHER_KM_TLS_CERT", "DISPATCHER_KM_TLS_KEY"]) expect(mountedAt(s, e[v] ?? ""), `${name}: ${v}`).toBe(true);
      expect(s.depends_on?.km?.condition, name).toBe("service_healthy");
    }
    // The certificate's CN names the caller (km.clientPrincipals): the dispatcher stores, workers and the monitor use.
    expect(env("dispatcher").DISPATCHER_KM_TLS_CERT).toMatch(/\/dispatcher\.pem$/);
    expect(env("worker").DISPATCHER_KM_TLS_CERT).toMatch(/\/worker\.pem$/);
    expect(env("monitor").DISPATCHER_KM_TLS_CERT).toMatch(/\/worker\.pem$/);
  });

  it("every role runs a command of the image's compiled program; health checks only where a plaintext port answers", () => {
    const roles = Object.entries(services).filter(([, s]) => s.build);
    expect(roles.map(([name]) => name).sort()).toEqual(["dispatcher", "km", "migrate", "monitor", "worker"]);
    for (const [name, s] of roles) {
      expect((s.build as { dockerfile?: string }).dockerfile, name).toBe("deploy/Dockerfile");
      // The arguments of the image's entrypoint (node bin/dispatcher.js), never a TypeScript loader or npm.
      expect(["serve", "migrate"], name).toContain(s.command?.[0]);
      expect(s.command?.join(" "), name).not.toMatch(/tsx|npm|node/);
    }
    expect(services.dispatcher?.healthcheck?.test?.slice(1, 3)).toEqual(["dispatcher", "health"]);
    // The image's own check is the dispatcher role's: roles without its port turn it off.
    expect(services.migrate?.healthcheck?.disable).toBe(true);
    // Workers and monitors: their metrics port's /readyz (the ports Prometheus scrapes them on).
    expect(services.worker?.healthcheck?.test?.join(" ")).toContain("http://127.0.0.1:9465/readyz");
    expect(services.monitor?.healthcheck?.test?.join(" ")).toContain("http://127.0.0.1:9466/readyz");
    // Production requires the agent credential key in every role that registers or calls agents.
    for (const name of kmClients) expect(env(name).DISPATCHER_AGENT_CREDENTIAL_KEY, name).toBe(STAND_IN.AGENT_CREDENTIAL_KEY);
    expect(env("dispatcher").DISPATCHER_SERVER_BIND).toBe("0.0.0.0");
    expect(env("dispatcher").DISPATCHER_BRIDGE_BIND).toBe("0.0.0.0");
  });

  it("the secret files it names are not in the repository", () => {
    for (const [name, s] of Object.entries(compose.secrets ?? {})) expect(existsSync(join(DEPLOY, s.file)), name).toBe(false);
  });
});
