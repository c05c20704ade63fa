// The agent CA's configuration: production refuses to start without the agent key or the CA (and refuses a plaintext
// channel); a CA made with openssl as docs/agents.md says loads, its key only with the right passphrase, and what it
// issues chains to it with the purposes that keep agents and the dispatcher apart.
import { execFileSync } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadAgentCa, prepareAgentSecrets } from "../../src/agent/ca.js";
import { ConfigError, loadConfig } from "../../src/config.js";
import { newKeyAndRequest, verifiedRequestKey } from "../../src/pki/csr.js";

const dir = mkdtempSync(join(tmpdir(), "agent-ca-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const silent = { warn: () => undefined };

function opensslCa(passphrase: string, name: string): { cert: string; key: string } {
  const key = join(dir, `${name}-key.pem`);
  const cert = join(dir, `${name}.pem`);
  const env = { ...process.env, PASS: passphrase };
  execFileSync("sh", ["-c", `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 | openssl pkcs8 -topk8 -v2 aes-256-cbc -passout env:PASS -out ${key}`], { env });
  execFileSync("openssl", ["req", "-x509", "-new", "-key", key, "-passin", "env:PASS", "-days", "30", "-subj", "/CN=dispatcher agent CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", cert], { env });
  return { cert, key };
}

const production = (env: Record<string, string>) => loadConfig({ DISPATCHER_MODE: "production", DISPATCHER_DATA_DIR: dir, ...env }, "");

describe("agent secrets in production", () => {
  const agentKey = randomBytes(32).toString("base64");

  it("refuses to start without the agent key, without the CA, or with a plaintext channel", () => {
    expect(() => prepareAgentSecrets(production({}), silent)).toThrow(ConfigError);
    expect(() => prepareAgentSecrets(production({ DISPATCHER_AGENT_CREDENTIAL_KEY: agentKey }), silent)).toThrow(/agent.caCert, agent.caKey: required in production/);
    expect(() => production({ DISPATCHER_AGENT_PLAINTEXT: "true" })).toThrow(/agent.plaintext/);
  });

  it("loads an openssl-made CA whose key the agent key decrypts, and refuses it under another key", () => {
    const ca = opensslCa(agentKey, "good");
    const config = production({ DISPATCHER_AGENT_CREDENTIAL_KEY: agentKey, DISPATCHER_AGENT_CA_CERT: ca.cert, DISPATCHER_AGENT_CA_KEY: ca.key });
    expect(() => prepareAgentSecrets(config, silent)).not.toThrow();
    const other = production({ DISPATCHER_AGENT_CREDENTIAL_KEY: randomBytes(32).toString("base64"), DISPATCHER_AGENT_CA_CERT: ca.cert, DISPATCHER_AGENT_CA_KEY: ca.key });
    expect(() => loadAgentCa(other)).toThrow(/cannot be decrypted/);

    const authority = loadAgentCa(config);
    const request = newKeyAndRequest("guest");
    const key = verifiedRequestKey(request.requestPem);
    if (key instanceof Error) throw key;
    const issued = authority.issueAgent(key, "01JDQ3Z5K8W8G4QF2Q6N2D7M9T", "01JDQ3Z5K8W8G4QF2Q6N2D7M9V", 60_000);
    const cert = new X509Certificate(issued.pem);
    const caCert = new X509Certificate(authority.bundlePem);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.subject).toContain("CN=01JDQ3Z5K8W8G4QF2Q6N2D7M9T");
    expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]); // server authentication only
    expect(new Date(cert.validTo).getTime()).toBeLessThanOrEqual(Date.now() + 61_000);
    const client = new X509Certificate(authority.clientIdentity().cert);
    expect(client.subject).toContain("CN=dispatcher");
    expect(client.keyUsage).toEqual(["1.3.6.1.5.5.7.3.2"]); // client authentication only
  });

  it("refuses a request that is not signed by the key it is for", () => {
    const one = newKeyAndRequest("a");
    const two = newKeyAndRequest("b");
    // Swap the signature of one for the other's: the key no longer proves itself.
    const der = (pem: string) => Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
    const forged = Buffer.concat([der(one.requestPem).subarray(0, -72), der(two.requestPem).subarray(-72)]);
    const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${forged.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    expect(verifiedRequestKey(pem)).toBeInstanceOf(Error);
    expect(verifiedRequestKey("not a request")).toBeInstanceOf(Error);
    expect(verifiedRequestKey(one.requestPem)).not.toBeInstanceOf(Error);
  });
});
