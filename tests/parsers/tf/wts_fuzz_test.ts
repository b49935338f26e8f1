/**
 * Fuzzing the weight-dump reader: valid `.wts` / `.wts2` files are mutated (byte flips,
 * truncation, insertions, edited counts) and parsed. A mutated file must either parse (and then
 * survive a write/read round trip unchanged) or be refused with a PARSE_ERROR naming the file
 * and an offset inside it: never another exception, never a hang.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { KilnError } from "../../../errors.ts";
import { parseWts, writeWts, writeWts2, type WtsTensor } from "../../../parsers/tf/wts.ts";

const RUNS = 2500;

/** A few small tensors with unique names, float32 or float16, 0 to 24 elements. */
const tensorsArb = fc.uniqueArray(
  fc.record({
    name: fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_/]{0,7}$/),
    dtype: fc.constantFrom("float32" as const, "float16" as const),
    bits: fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 24 }),
    shape: fc.constantFrom("flat", "matrix", "scalar"),
  }),
  { minLength: 1, maxLength: 4, selector: (t) => t.name },
).map((list) =>
  new Map<string, WtsTensor>(list.map((t) => {
    const n = t.shape === "scalar" ? 1 : t.bits.length;
    const bits = t.bits.length >= n ? t.bits.slice(0, n) : [0];
    const dims = t.shape === "scalar" ? [] : t.shape === "matrix" && n % 2 === 0 ? [2, n / 2] : [n];
    const tensor: WtsTensor = t.dtype === "float32"
      ? { dtype: "float32", dims, values: new Float32Array(new Uint32Array(bits).buffer) }
      : { dtype: "float16", dims, values: Uint16Array.from(bits, (b) => b & 0xffff) };
    return [t.name, tensor];
  }))
);

/** Bytes that matter to the grammar, so insertions hit its edges more often than at random. */
const interestingByte = fc.oneof(
  fc.nat({ max: 255 }),
  fc.constantFrom(0x20, 0x0a, 0x09, 0x28, 0x29, 0x2c, 0x30, 0x31, 0x39, 0x66, 0x67),
);

type Mutation =
  | { kind: "flip"; at: number; byte: number }
  | { kind: "truncate"; at: number }
  | { kind: "insert"; at: number; bytes: number[] }
  | { kind: "delete"; at: number; length: number }
  | { kind: "count"; which: number; value: string };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), byte: interestingByte }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.array(interestingByte, { minLength: 1, maxLength: 6 }),
  }),
  fc.record({
    kind: fc.constant("delete" as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 6 }),
  }),
  fc.record({
    kind: fc.constant("count" as const),
    which: fc.nat(),
    value: fc.oneof(
      fc.nat({ max: 40 }).map(String),
      fc.constantFrom("2147483648", "4294967297", "999999999999999", "9999999999999999999", "-1"),
    ),
  }),
);

/** Applies mutations; "count" rewrites one run of decimal digits (a count, type, dim or value). */
function mutate(file: Uint8Array, mutations: Mutation[]): Uint8Array {
  let b = file;
  for (const m of mutations) {
    const at = "at" in m ? m.at % (b.length + 1) : 0;
    switch (m.kind) {
      case "flip":
        if (at < b.length) {
          b = b.slice();
          b[at] = m.byte;
        }
        break;
      case "truncate":
        b = b.slice(0, at);
        break;
      case "insert":
        b = concat(b.subarray(0, at), Uint8Array.from(m.bytes), b.subarray(at));
        break;
      case "delete":
        b = concat(b.subarray(0, at), b.subarray(Math.min(b.length, at + m.length)));
        break;
      case "count": {
        const runs = [...new TextDecoder("latin1").decode(b).matchAll(/\d+/g)];
        if (runs.length === 0) break;
        const run = runs[m.which % runs.length];
        const value = new TextEncoder().encode(m.value);
        b = concat(b.subarray(0, run.index), value, b.subarray(run.index + run[0].length));
        break;
      }
    }
  }
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function bitsOf(t: WtsTensor): number[] {
  return t.dtype === "float32" ? [...new Uint32Array(t.values.buffer)] : [...t.values];
}

/** Parse; a success must round-trip, a refusal must be a well-formed PARSE_ERROR. */
function check(bytes: Uint8Array, file: string): "parsed" | "refused" {
  let parsed: Map<string, WtsTensor>;
  try {
    parsed = parseWts(bytes, file);
  } catch (e) {
    if (!(e instanceof KilnError)) throw new Error(`not a KilnError: ${e}`, { cause: e });
    assert.equal(e.code, "PARSE_ERROR", e.message);
    assert.equal(e.file, file);
    assert.ok(
      e.offset !== undefined && e.offset >= 0 && e.offset <= bytes.length,
      `offset ${e.offset} of ${bytes.length}: ${e.message}`,
    );
    return "refused";
  }
  const again = parseWts(writeWts2(parsed), "again.wts2");
  assert.deepEqual([...again.keys()], [...parsed.keys()]);
  for (const [name, t] of parsed) {
    const u = again.get(name)!;
    assert.equal(u.dtype, t.dtype);
    assert.equal(u.values.length, t.values.length);
    assert.deepEqual(bitsOf(u), bitsOf(t), name);
  }
  return "parsed";
}

for (const format of ["wts", "wts2"] as const) {
  Deno.test(`parseWts: ${RUNS} mutated .${format} files parse or raise PARSE_ERROR`, () => {
    const outcomes = { parsed: 0, refused: 0 };
    const started = performance.now();
    fc.assert(
      fc.property(tensorsArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (t, ms) => {
        const file = format === "wts" ? new TextEncoder().encode(writeWts(t)) : writeWts2(t);
        outcomes[check(mutate(file, ms), `fuzz.${format}`)]++;
      }),
      { numRuns: RUNS, seed: format === "wts" ? 1 : 2 },
    );
    console.log(`.${format}: ${JSON.stringify(outcomes)}`);
    // Both branches must actually be exercised, or the property proves little.
    assert.ok(outcomes.refused > RUNS / 4, JSON.stringify(outcomes));
    assert.ok(outcomes.parsed > 20, JSON.stringify(outcomes));
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds < 30, `took ${seconds.toFixed(1)} s`);
  });
}

Deno.test("parseWts: unmutated random files always parse back to what was written", () => {
  fc.assert(
    fc.property(tensorsArb, (t) => {
      for (const bytes of [new TextEncoder().encode(writeWts(t)), writeWts2(t)]) {
        const back = parseWts(bytes, "valid");
        assert.deepEqual([...back.keys()], [...t.keys()]);
        for (const [name, w] of t) assert.deepEqual(bitsOf(back.get(name)!), bitsOf(w), name);
      }
    }),
    { numRuns: 300, seed: 3 },
  );
});
