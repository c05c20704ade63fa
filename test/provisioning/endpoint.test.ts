// SSRF guard for cloud endpoints: schemes, credentials in URLs, link-local and metadata addresses (literal, in other
// spellings, and behind host names), and the configuration switches that relax it.
import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/errors.js";
import { checkEndpoint, isForbiddenAddress, type EndpointPolicy } from "../../src/provisioning/clouds/endpoint.js";
import { fixedResolve } from "./support.js";

const strict: EndpointPolicy = { allowInsecure: false, allowLinkLocal: false, resolve: fixedResolve };

async function violation(value: string, policy: EndpointPolicy = strict): Promise<string> {
  const err = await checkEndpoint("endpoint", value, policy).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, value).toBeInstanceOf(InvalidArgumentError);
  const v = (err as InvalidArgumentError).violations;
  expect(v.map((x) => x.field)).toEqual(["endpoint"]);
  return v[0]?.description ?? "";
}

describe("checkEndpoint", () => {
  it("accepts https endpoints on public addresses and names, normalised", async () => {
    expect(await checkEndpoint("endpoint", "https://api.cloud.test/v2", strict)).toBe("https://api.cloud.test/v2");
    expect(await checkEndpoint("endpoint", "https://203.0.113.5:8443", strict)).toBe("https://203.0.113.5:8443/");
    expect(await checkEndpoint("endpoint", "https://127.0.0.1:9000", strict)).toBe("https://127.0.0.1:9000/");
  });

  it("refuses other schemes, and http unless allowed", async () => {
    for (const bad of ["http://api.cloud.test", "ftp://api.cloud.test", "file:///etc/passwd", "gopher://api.cloud.test", "javascript:alert(1)"]) {
      expect(await violation(bad)).toMatch(/scheme must be https$/);
    }
    expect(await checkEndpoint("endpoint", "http://api.cloud.test", { ...strict, allowInsecure: true })).toBe("http://api.cloud.test/");
    expect(await violation("ftp://api.cloud.test", { ...strict, allowInsecure: true })).toMatch(/https or http/);
  });

  it("refuses relative, empty and credential-carrying URLs", async () => {
    expect(await violation("")).toBe("is required");
    expect(await violation("api.cloud.test")).toMatch(/absolute URL/);
    expect(await violation("https://user:pw@api.cloud.test")).toMatch(/credentials/);
    expect(await violation(`https://api.cloud.test/${"a".repeat(2100)}`)).toMatch(/at most/);
  });

  it("refuses link-local and metadata addresses however they are spelt", async () => {
    for (const bad of [
      "https://169.254.169.254/latest/meta-data",
      "https://169.254.1.1",
      "https://0xA9FEA9FE/",
      "https://2852039166/",
      "https://169.254.169.254./",
      "https://[fe80::1]/",
      "https://[fd00:ec2::254]/",
      "https://[::ffff:169.254.169.254]/",
    ]) {
      expect(await violation(bad), bad).toMatch(/link-local or cloud metadata/);
    }
    for (const bad of ["https://metadata.google.internal/computeMetadata/v1", "https://METADATA.google.internal./", "https://metadata/"]) {
      expect(await violation(bad), bad).toMatch(/metadata service/);
    }
  });

  it("resolves names and refuses one when any address is link-local or metadata", async () => {
    expect(await violation("https://rebind.cloud.test")).toMatch(/resolves to a link-local/);
    expect(await violation("https://v6meta.cloud.test")).toMatch(/resolves to a link-local/);
    expect(await violation("https://nowhere.cloud.test")).toMatch(/does not resolve/);
  });

  it("accepts link-local and metadata targets only when configuration allows them", async () => {
    const relaxed = { ...strict, allowLinkLocal: true };
    expect(await checkEndpoint("endpoint", "https://169.254.169.254/", relaxed)).toBe("https://169.254.169.254/");
    expect(await checkEndpoint("endpoint", "https://rebind.cloud.test/", relaxed)).toBe("https://rebind.cloud.test/");
  });

  it("classifies addresses", () => {
    expect(isForbiddenAddress("169.254.169.254")).toBe(true);
    expect(isForbiddenAddress("fe80::abcd%eth0")).toBe(true);
    expect(isForbiddenAddress("febf::1")).toBe(true);
    expect(isForbiddenAddress("fec0::1")).toBe(false);
    expect(isForbiddenAddress("169.255.0.1")).toBe(false);
    expect(isForbiddenAddress("10.0.0.1")).toBe(false);
    expect(isForbiddenAddress("not an ip")).toBe(false);
  });
});
