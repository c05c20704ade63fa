// Reading an EC2 Query API request the way EC2 does: `Name.N` lists, `Filter.N.Name`/`Filter.N.Value.M`, tag
// specifications, and the parameter checks EC2 answers with MissingParameter or UnknownParameter. The fake EC2 uses
// these so that a driver sending a wrong parameter name fails the way it would against AWS.
export class Ec2Fault extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** `Name.1`, `Name.2`, … of a Query API list. */
export function listOf(p: URLSearchParams, name: string): string[] {
  const out: string[] = [];
  for (let n = 1; p.has(`${name}.${n}`); n++) out.push(p.get(`${name}.${n}`)!);
  return out;
}

export function filterValues(p: URLSearchParams, filter: string): string[] {
  for (let n = 1; p.has(`Filter.${n}.Name`); n++) if (p.get(`Filter.${n}.Name`) === filter) return listOf(p, `Filter.${n}.Value`);
  return [];
}

/** Every filter of the request, by name. */
export function filters(p: URLSearchParams): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let n = 1; p.has(`Filter.${n}.Name`); n++) out.set(p.get(`Filter.${n}.Name`)!, listOf(p, `Filter.${n}.Value`));
  return out;
}

/** Whether a resource with these tags passes the request's tag:<key> and tag-key filters. */
export function tagFiltersPass(p: URLSearchParams, tags: ReadonlyMap<string, string>): boolean {
  for (const [name, values] of filters(p)) {
    if (name.startsWith("tag:") && !values.includes(tags.get(name.slice(4)) ?? "\u0000none")) return false;
    if (name === "tag-key" && !values.some((k) => tags.has(k))) return false;
  }
  return true;
}

/** The tags of the request's tag specifications for `resourceType` (others are InvalidParameterValue). */
export function specifiedTags(p: URLSearchParams, resourceType: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (let s = 1; p.has(`TagSpecification.${s}.ResourceType`); s++) {
    const type = p.get(`TagSpecification.${s}.ResourceType`);
    if (type !== resourceType) throw new Ec2Fault(400, "InvalidParameterValue", `'${type}' is not a valid taggable resource type for this operation.`);
    for (let t = 1; p.has(`TagSpecification.${s}.Tag.${t}.Key`); t++) tags.set(p.get(`TagSpecification.${s}.Tag.${t}.Key`)!, p.get(`TagSpecification.${s}.Tag.${t}.Value`) ?? "");
  }
  return tags;
}

/**
 * EC2's parameter checks: every name in `required` present, every parameter matching one of `allowed` (plus the
 * envelope's Action, Version and DryRun), as EC2 answers MissingParameter / UnknownParameter.
 */
export function checkParams(p: URLSearchParams, required: readonly string[], allowed: readonly RegExp[]): void {
  for (const name of required) if (!p.has(name) || p.get(name) === "") throw new Ec2Fault(400, "MissingParameter", `The request must contain the parameter ${name}`);
  for (const name of p.keys()) {
    if (name === "Action" || name === "Version" || name === "DryRun") continue;
    if (!allowed.some((re) => re.test(name))) throw new Ec2Fault(400, "UnknownParameter", `The parameter ${name} is not recognized`);
  }
}

/** Allowed-name patterns for a tag specification list and a filter list. */
export const TAG_SPEC = /^TagSpecification\.\d+\.(ResourceType|Tag\.\d+\.(Key|Value))$/;
export const FILTER = /^Filter\.\d+\.(Name|Value\.\d+)$/;
