// Hostile requests for the API fuzz tests: strings and integers of every awkward kind, a request of any method built
// from its empty message (each field hostile, or mostly one of the known values of its name), and the run over every
// unary method of some services that counts the answers and fails on INTERNAL, UNKNOWN or a non-gRPC error.
import { status, type MethodDefinition } from "@grpc/grpc-js";
import fc from "fast-check";
import { expect } from "vitest";
import { DispatcherError } from "../../src/client/index.js";

/** Values every API should survive in a string field, plus `extra` that mean something to the one under test. */
const COMMON_STRINGS = ["", " ", "\u0000", "%", "'; DROP TABLE resources; --", "x".repeat(100_000), "01HZZZZZZZZZZZZZZZZZZZZZZZ", "e30", "aws:x", "dispatcher:client-token"];

/** Random binary and grapheme strings, the common hostile values and `extra`, and strings shaped like names (`name`). */
export function hostileStrings(extra: readonly string[], name: RegExp = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$/): fc.Arbitrary<string> {
  return fc.oneof(fc.string({ maxLength: 300, unit: "binary" }), fc.string({ maxLength: 40, unit: "grapheme" }), fc.constantFrom(...COMMON_STRINGS, ...extra), fc.stringMatching(name));
}

/** Any int32, and the edges of the API under test. */
export function hostileInts(edges: readonly number[]): fc.Arbitrary<number> {
  return fc.oneof(fc.integer({ min: -2147483648, max: 2147483647 }), fc.constantFrom(...edges));
}

/** A tag map of hostile keys and values. */
export function hostileTags(strings: fc.Arbitrary<string>, maxKeys = 60): fc.Arbitrary<Record<string, string>> {
  return fc.dictionary(strings, strings, { maxKeys });
}

/** A resource's tag change (`change` of the Set…Tags requests), or none. */
export function hostileTagChange(strings: fc.Arbitrary<string>): fc.Arbitrary<{ set: Record<string, string>; remove: string[] } | undefined> {
  return fc.option(fc.record({ set: hostileTags(strings), remove: fc.array(strings, { maxLength: 60 }) }), { nil: undefined });
}

export interface RequestArbitraries {
  string: fc.Arbitrary<string>;
  int: fc.Arbitrary<number>;
  /** Fields that are not scalars (maps, messages, bytes), by name. */
  fields?: Record<string, fc.Arbitrary<unknown>>;
  /** Values that get past validation, by field name: chosen three times out of four. */
  known: Record<string, readonly unknown[]>;
}

/** A request shaped like `template`: each field hostile, or (mostly) one of the known values of its name. */
export function requestArbitrary(template: Record<string, unknown>, a: RequestArbitraries): fc.Arbitrary<Record<string, unknown>> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [key, value] of Object.entries(template)) {
    let wild: fc.Arbitrary<unknown>;
    if (a.fields?.[key]) wild = a.fields[key];
    else if (typeof value === "string") wild = a.string;
    else if (typeof value === "number") wild = a.int;
    else if (typeof value === "boolean") wild = fc.boolean();
    else throw new Error(`no arbitrary for field ${key}`);
    const tame = a.known[key];
    fields[key] = tame ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...tame) }, { weight: 1, arbitrary: wild }) : wild;
  }
  return fc.record(fields);
}

/** Answers by gRPC code (-1: not a gRPC error); `record` fails the property on INTERNAL, UNKNOWN or -1. */
export function answerCounter(): { codes: Map<number, number>; record: (path: string, outcome: unknown) => void } {
  const codes = new Map<number, number>();
  const record = (path: string, outcome: unknown): void => {
    const code = outcome instanceof DispatcherError ? outcome.code : outcome instanceof Error ? -1 : status.OK;
    codes.set(code, (codes.get(code) ?? 0) + 1);
    // A server stream that ends OK leaves no outcome at all (undefined): only an error has a message to show.
    expect([status.INTERNAL, status.UNKNOWN, -1], `${path}: ${outcome instanceof Error ? outcome.message : "answered OK"}`).not.toContain(code);
  };
  return { codes, record };
}

type AnyClient = Record<string, (request: unknown) => Promise<unknown>>;

/** `numRuns` hostile requests to every (unary) method of each service through its client; the methods and answers seen. */
export async function fuzzServices(services: Array<[definition: object, client: object]>, a: RequestArbitraries, numRuns = 25): Promise<{ methods: number; codes: Map<number, number> }> {
  const { codes, record } = answerCounter();
  let methods = 0;
  for (const [definition, client] of services) {
    for (const [key, method] of Object.entries(definition) as Array<[string, MethodDefinition<unknown, unknown>]>) {
      methods++;
      const template = method.requestDeserialize(Buffer.alloc(0)) as Record<string, unknown>;
      const call = (client as AnyClient)[key] as (r: unknown) => Promise<unknown>;
      await fc.assert(
        fc.asyncProperty(requestArbitrary(template, a), async (request) => record(method.path, await call(request).catch((e: unknown) => e))),
        { numRuns },
      );
    }
  }
  return { methods, codes };
}

/** The run reached past validation (OK and NOT_FOUND answers) as well as into it (INVALID_ARGUMENT). */
export function expectAnswersSpread(codes: Map<number, number>): void {
  expect(codes.get(status.OK)).toBeGreaterThan(10);
  expect(codes.get(status.INVALID_ARGUMENT)).toBeGreaterThan(10);
  expect(codes.get(status.NOT_FOUND)).toBeGreaterThan(0);
}
