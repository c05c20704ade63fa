// Telemetry settings: the OTLP endpoint from DISPATCHER_* or the standard OTEL_* variable, and the traces URL.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { configFileArg, keepsSpans, settingsFromProcess, tracesUrl } from "../../src/telemetry/sdk.js";

describe("telemetry configuration", () => {
  it("is off by default", () => {
    expect(loadConfig({}, "").telemetry).toEqual({
      otlpEndpoint: "",
      sampleRatio: 1,
      serviceName: "dispatcher",
      file: "",
      traceUiUrl: "",
      store: { enabled: true, maxSpans: 10_000, maxAgeMs: 3_600_000 },
    });
  });

  it("keeps spans in the embedded store unless an OTLP endpoint is set or it is turned off", () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://jaeger:4318" }, "").telemetry.store.enabled).toBe(false);
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://jaeger:4318", DISPATCHER_TELEMETRY_STORE_ENABLED: "true" }, "").telemetry.store.enabled).toBe(true);
    expect(loadConfig({ DISPATCHER_TELEMETRY_STORE_ENABLED: "false" }, "").telemetry.store.enabled).toBe(false);
    const t = loadConfig({ DISPATCHER_TELEMETRY_STORE_MAX_SPANS: "500", DISPATCHER_TELEMETRY_STORE_MAX_AGE_MS: "60000" }, "").telemetry.store;
    expect(t).toEqual({ enabled: true, maxSpans: 500, maxAgeMs: 60_000 });
    expect(() => loadConfig({ DISPATCHER_TELEMETRY_STORE_MAX_SPANS: "0" }, "")).toThrow(ConfigError);
  });

  it("takes a trace UI link only with {traceId} in it", () => {
    expect(loadConfig({ DISPATCHER_TELEMETRY_TRACE_UI_URL: "http://127.0.0.1:16686/trace/{traceId}" }, "").telemetry.traceUiUrl).toBe("http://127.0.0.1:16686/trace/{traceId}");
    expect(() => loadConfig({ DISPATCHER_TELEMETRY_TRACE_UI_URL: "http://127.0.0.1:16686/" }, "")).toThrow(ConfigError);
  });

  it("takes OTEL_EXPORTER_OTLP_ENDPOINT when DISPATCHER_TELEMETRY_OTLP_ENDPOINT is unset or empty", () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://jaeger:4318" }, "").telemetry.otlpEndpoint).toBe("http://jaeger:4318");
    expect(loadConfig({ DISPATCHER_TELEMETRY_OTLP_ENDPOINT: "", OTEL_EXPORTER_OTLP_ENDPOINT: "http://jaeger:4318" }, "").telemetry.otlpEndpoint).toBe("http://jaeger:4318");
  });

  it("prefers DISPATCHER_TELEMETRY_OTLP_ENDPOINT", () => {
    const env = { DISPATCHER_TELEMETRY_OTLP_ENDPOINT: "https://otel.example:4318", OTEL_EXPORTER_OTLP_ENDPOINT: "http://jaeger:4318" };
    expect(loadConfig(env, "").telemetry.otlpEndpoint).toBe("https://otel.example:4318");
  });

  it("names the variable a bad endpoint came from", () => {
    let err: unknown;
    try {
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "jaeger:4318" }, "");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([expect.stringContaining("telemetry.otlpEndpoint (OTEL_EXPORTER_OTLP_ENDPOINT)")]);
  });

  it("reads the span file and sample ratio", () => {
    const t = loadConfig({ DISPATCHER_TELEMETRY_FILE: "/tmp/spans.jsonl", DISPATCHER_TELEMETRY_SAMPLE_RATIO: "0.25" }, "").telemetry;
    expect(t.file).toBe("/tmp/spans.jsonl");
    expect(t.sampleRatio).toBe(0.25);
  });
});

describe("tracesUrl", () => {
  it("appends /v1/traces to a base endpoint once", () => {
    expect(tracesUrl("http://127.0.0.1:4318")).toBe("http://127.0.0.1:4318/v1/traces");
    expect(tracesUrl("http://127.0.0.1:4318/")).toBe("http://127.0.0.1:4318/v1/traces");
    expect(tracesUrl("http://collector/otlp")).toBe("http://collector/otlp/v1/traces");
    expect(tracesUrl("http://127.0.0.1:4318/v1/traces")).toBe("http://127.0.0.1:4318/v1/traces");
  });
});

describe("settings of the process (read before the CLI parses its arguments)", () => {
  it("keeps spans only in processes that serve them back: start, or serve with the dispatcher role", () => {
    expect(keepsSpans(["start"])).toBe(true);
    expect(keepsSpans(["--config=a.json", "start"])).toBe(true);
    expect(keepsSpans(["-c", "a.json", "serve", "--role", "worker,dispatcher"])).toBe(true);
    expect(keepsSpans(["serve", "-r", "km", "--role=dispatcher"])).toBe(true);
    expect(keepsSpans(["serve", "-rdispatcher"])).toBe(true);
    expect(keepsSpans(["-c", "a.json", "serve", "--role", "worker"])).toBe(false);
    expect(keepsSpans(["serve", "--role", "km", "--migrate"])).toBe(false);
    expect(keepsSpans(["serve", "--role=monitor,worker"])).toBe(false);
    expect(keepsSpans(["-c", "dispatcher", "serve", "-r", "km"])).toBe(false);
    expect(keepsSpans(["jobs", "ls"])).toBe(false);
    expect(keepsSpans(["agent", "--port", "2003"])).toBe(false);
    expect(keepsSpans([])).toBe(false);
  });

  it("finds the CLI's -c/--config option in every form commander accepts", () => {
    expect(configFileArg(["serve", "-c", "a.json"])).toBe("a.json");
    expect(configFileArg(["--config", "b.json", "serve"])).toBe("b.json");
    expect(configFileArg(["serve", "--config=c.json"])).toBe("c.json");
    expect(configFileArg(["serve", "-cd.json"])).toBe("d.json");
    expect(configFileArg(["serve", "--role", "worker"])).toBeUndefined();
    expect(configFileArg(["run", "--", "-c", "x.json"])).toBeUndefined();
  });

  it("reads telemetry from the --config file before DISPATCHER_CONFIG, with the environment on top", () => {
    const dir = mkdtempSync(join(tmpdir(), "telemetry-settings-"));
    try {
      const fromArg = join(dir, "arg.json");
      const fromEnv = join(dir, "env.json");
      writeFileSync(fromArg, JSON.stringify({ telemetry: { serviceName: "from-arg", sampleRatio: 0.5 } }));
      writeFileSync(fromEnv, JSON.stringify({ telemetry: { serviceName: "from-env" } }));
      expect(settingsFromProcess(["serve", "-c", fromArg], { DISPATCHER_CONFIG: fromEnv })).toMatchObject({ serviceName: "from-arg", sampleRatio: 0.5 });
      expect(settingsFromProcess(["serve"], { DISPATCHER_CONFIG: fromEnv })?.serviceName).toBe("from-env");
      expect(settingsFromProcess(["serve", "-c", fromArg], { DISPATCHER_TELEMETRY_SERVICE_NAME: "env-wins" })?.serviceName).toBe("env-wins");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("is undefined, without throwing, when the configuration is invalid or the file is missing", () => {
    expect(settingsFromProcess([], { DISPATCHER_SERVER_PORT: "nope" })).toBeUndefined();
    expect(settingsFromProcess(["-c", "/nonexistent/config.json"], {})).toBeUndefined();
  });
});
