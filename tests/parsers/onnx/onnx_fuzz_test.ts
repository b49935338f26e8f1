/**
 * Fuzzing parseOnnx with fast-check: byte-level mutations of real models (flips, sets,
 * truncations, insertions, deletions) and structured mutations of a model with many op types
 * (wrong dims, missing initializers, attributes of the wrong type or value, cycles, rewired
 * inputs, unknown ops, bad opsets, symbolic dims). Each file is imported and, when accepted,
 * built and run on the CPU; every refusal must be a KilnError, nothing else may escape and no
 * case may hang.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { buildEngine } from "../../../builder/build.ts";
import { N } from "../../../dsl/ir/dims.ts";
import { type HostArray, newHostArray } from "../../../dsl/ir/dtype.ts";
import { KilnError } from "../../../errors.ts";
import { parseOnnx } from "../../../parsers/onnx/mod.ts";
import { Logger } from "../../../runtime/logger.ts";
import { randomArray, rng } from "../../_util.ts";
import { encodeModel, f, i, ints, modelBytes, modelObject, type ModelSpec, s } from "./_build.ts";

const MNIST = Deno.readFileSync(new URL("../../../data/onnx/mnist-8.onnx", import.meta.url));

/** A model with many op types and both opset-dependent forms of inputs. */
function zooSpec(): ModelSpec {
  const r = rng(11);
  const w = (name: string, dims: number[]) => ({
    name,
    dims,
    values: randomArray(dims.reduce((a, b) => a * b, 1), r),
  });
  const i64 = (name: string, values: number[]) => ({
    name,
    type: 7,
    dims: [values.length],
    values,
  });
  return {
    opset: 13,
    inputs: [
      { name: "x", dims: ["batch", 2, 6, 6] },
      { name: "seq", dims: [3, 1, 4] },
      { name: "ids", type: 7, dims: [3] },
    ],
    outputs: [{ name: "prob" }, { name: "top" }, { name: "h" }, { name: "picked" }],
    nodes: [
      {
        op: "Conv",
        inputs: ["x", "cw", "cb"],
        outputs: ["c"],
        attrs: { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]), group: i(1) },
      },
      {
        op: "BatchNormalization",
        inputs: ["c", "g", "b", "m", "v"],
        outputs: ["bn"],
        attrs: { epsilon: f(1e-5) },
      },
      { op: "LeakyRelu", inputs: ["bn"], outputs: ["act"], attrs: { alpha: f(0.1) } },
      {
        op: "MaxPool",
        inputs: ["act"],
        outputs: ["pool"],
        attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]), auto_pad: s("VALID") },
      },
      { op: "Shape", inputs: ["pool"], outputs: ["shape"] },
      { op: "Gather", inputs: ["shape", "zero"], outputs: ["n"], attrs: { axis: i(0) } },
      { op: "Concat", inputs: ["n", "minus1"], outputs: ["target"], attrs: { axis: i(0) } },
      { op: "Reshape", inputs: ["pool", "target"], outputs: ["flat"] },
      { op: "Gemm", inputs: ["flat", "fw", "fb"], outputs: ["logits"], attrs: { transB: i(1) } },
      { op: "Softmax", inputs: ["logits"], outputs: ["prob"], attrs: { axis: i(-1) } },
      { op: "TopK", inputs: ["logits", "k"], outputs: ["top", "topi"], attrs: { axis: i(1) } },
      {
        op: "LSTM",
        inputs: ["seq", "lw", "lr", "lb"],
        outputs: ["", "h"],
        attrs: { hidden_size: i(3), direction: s("forward") },
      },
      { op: "Slice", inputs: ["table", "st", "en", "ax"], outputs: ["sl"] },
      { op: "Pad", inputs: ["sl", "pads"], outputs: ["padded"], attrs: { mode: s("edge") } },
      { op: "Transpose", inputs: ["padded"], outputs: ["tr"], attrs: { perm: ints([1, 0]) } },
      { op: "Gather", inputs: ["tr", "ids"], outputs: ["rows"], attrs: { axis: i(0) } },
      { op: "ReduceMean", inputs: ["rows"], outputs: ["picked"], attrs: { axes: ints([1]) } },
    ],
    initializers: [
      w("cw", [3, 2, 3, 3]),
      w("cb", [3]),
      w("g", [3]),
      w("b", [3]),
      w("m", [3]),
      { name: "v", dims: [3], values: [1, 2, 3] },
      i64("zero", [0]),
      i64("minus1", [-1]),
      w("fw", [4, 27]),
      w("fb", [4]),
      i64("k", [2]),
      w("lw", [1, 12, 4]),
      w("lr", [1, 12, 3]),
      w("lb", [1, 24]),
      w("table", [5, 4]),
      i64("st", [1, 0]),
      i64("en", [4, 3]),
      i64("ax", [0, 1]),
      i64("pads", [0, 1, 1, 1]),
    ],
  };
}

const ZOO = modelBytes(zooSpec());

/** Imports, then builds and runs on the CPU; anything thrown must be a KilnError. */
/** Refusals by KilnError code, over the whole file. */
const CODES: Record<string, number> = {};

async function importOrRefuse(bytes: Uint8Array): Promise<"ran" | "refused"> {
  try {
    const { network } = await parseOnnx(bytes);
    const engine = await buildEngine(network, {
      device: "cpu",
      maxBatchSize: 2,
      logger: new Logger("error"),
    });
    try {
      const r = rng(bytes.length);
      const inputs: Record<string, HostArray> = {};
      for (const b of engine.bindings.filter((b) => b.isInput)) {
        const n = b.shape.reduce<number>((a, d) => a * (d === N ? 2 : d), 1);
        const a = newHostArray(b.dtype, n);
        // Indices stay small so that Gathers mostly run; floats are random.
        if (b.dtype === "float32") a.set(randomArray(n, r));
        else for (let k = 0; k < n; k++) a[k] = k % 3;
        inputs[b.name] = a;
      }
      using ctx = engine.createContext();
      const batched = engine.bindings.some((b) => b.shape[0] === N);
      await ctx.execute(inputs, { batchSize: batched ? 2 : undefined });
    } finally {
      engine[Symbol.dispose]();
    }
    return "ran";
  } catch (e) {
    if (!(e instanceof KilnError)) {
      throw new Error(`a non-KilnError escaped: ${e instanceof Error ? e.stack : e}`);
    }
    // INTERNAL means Kiln itself went wrong (an importer bug caught at the boundary).
    if (e.code === "INTERNAL") throw new Error(`an INTERNAL KilnError: ${e.message}`, { cause: e });
    CODES[e.code] = (CODES[e.code] ?? 0) + 1;
    return "refused";
  }
}

/** A position anywhere in the input (fast-check biases plain integers toward small values). */
const pos = fc.noBias(fc.nat());

// Flips and sets (which keep the framing) weigh more than edits that shift every later field.
const byteMutation = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("flip"),
      at: pos,
      bit: fc.integer({ min: 0, max: 7 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("set"),
      at: pos,
      value: fc.integer({ min: 0, max: 255 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate"), at: pos }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("insert"),
      at: pos,
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("delete"),
      at: pos,
      len: fc.integer({ min: 1, max: 16 }),
    }),
  },
);
type ByteMutation = typeof byteMutation extends fc.Arbitrary<infer T> ? T : never;

function mutateBytes(bytes: Uint8Array, muts: ByteMutation[]): Uint8Array {
  let b = bytes.slice();
  for (const m of muts) {
    const at = b.length ? m.at % b.length : 0;
    switch (m.kind) {
      case "flip":
        if (b.length) b[at] ^= 1 << m.bit;
        break;
      case "set":
        if (b.length) b[at] = m.value;
        break;
      case "truncate":
        b = b.slice(0, at);
        break;
      case "insert":
        b = new Uint8Array([...b.subarray(0, at), ...m.bytes, ...b.subarray(at)]);
        break;
      case "delete":
        b = new Uint8Array([...b.subarray(0, at), ...b.subarray(at + m.len)]);
        break;
    }
  }
  return b;
}

/** Runs `cases` under fast-check, counting outcomes and the slowest case. */
async function fuzz<T>(
  arb: fc.Arbitrary<T>,
  toBytes: (v: T) => Uint8Array,
  numRuns: number,
  seed: number,
): Promise<{ ran: number; refused: number; slowest: number; seconds: number }> {
  const counts = { ran: 0, refused: 0, slowest: 0 };
  const t0 = performance.now();
  await fc.assert(
    fc.asyncProperty(arb, async (v) => {
      const start = performance.now();
      counts[await importOrRefuse(toBytes(v))]++;
      counts.slowest = Math.max(counts.slowest, performance.now() - start);
    }),
    // KILN_FUZZ_SEED explores other seeds (the default ones keep the suite reproducible).
    { numRuns, seed: Number(Deno.env.get("KILN_FUZZ_SEED") ?? seed) },
  );
  return { ...counts, seconds: (performance.now() - t0) / 1000 };
}

Deno.test("parseOnnx imports or refuses 1,200 byte-mutated models with KilnErrors only", async () => {
  const baseline = await Promise.all([importOrRefuse(MNIST), importOrRefuse(ZOO)]);
  assert.deepEqual(baseline, ["ran", "ran"]);
  const r = await fuzz(
    fc.tuple(fc.constantFrom(MNIST, ZOO), fc.array(byteMutation, { minLength: 1, maxLength: 4 })),
    ([seed, muts]) => mutateBytes(seed, muts),
    1200,
    0x0e1,
  );
  console.log(
    `byte-mutated ONNX models: ${r.ran} imported and ran, ${r.refused} refused (KilnError), ` +
      `${r.seconds.toFixed(1)} s, slowest case ${r.slowest.toFixed(0)} ms; codes so far ${
        JSON.stringify(CODES)
      }`,
  );
  assert.equal(r.ran + r.refused, 1200);
  assert.ok(r.ran >= 50 && r.refused >= 50, JSON.stringify(r));
  assert.ok(r.slowest < 5000, `a case took ${r.slowest} ms`);
});

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

const structuredMutation = fc.oneof(
  fc.record({
    kind: fc.constant("dims"),
    which: pos,
    dim: pos,
    value: fc.constantFrom(0, 1, 2, 7, -1, 2 ** 31, 1e9),
  }),
  fc.record({ kind: fc.constant("dropInitializer"), which: pos }),
  fc.record({
    kind: fc.constant("dataType"),
    which: pos,
    value: fc.constantFrom(0, 1, 2, 6, 7, 8, 9, 10, 11, 16, 22, 99),
  }),
  fc.record({
    kind: fc.constant("attrType"),
    node: pos,
    which: pos,
    to: fc.constantFrom("f", "i", "s", "floats", "ints"),
  }),
  fc.record({
    kind: fc.constant("attrValue"),
    node: pos,
    which: pos,
    value: fc.constantFrom(-7, -1, 0, 1, 3, 1e6, 2 ** 40),
  }),
  fc.record({ kind: fc.constant("cycle"), node: pos, input: pos, from: pos }),
  fc.record({
    kind: fc.constant("rewire"),
    node: pos,
    input: pos,
    to: fc.constantFrom("", "x", "seq", "ids", "ghost", "shape", "logits", "zero", "cw"),
  }),
  fc.record({
    kind: fc.constant("opType"),
    node: pos,
    to: fc.constantFrom("Relu", "Conv", "Gemm", "Reshape", "Slice", "Concat", "LSTM", "Pad", "Foo"),
  }),
  fc.record({ kind: fc.constant("duplicateOutput"), node: pos, other: pos }),
  fc.record({
    kind: fc.constant("inputDims"),
    which: pos,
    dim: pos,
    value: fc.constantFrom<unknown>({ dim_param: "h" }, {}, { dim_value: 0 }, { dim_value: 1 }, {
      dim_value: 100000,
    }),
  }),
  fc.record({
    kind: fc.constant("opset"),
    value: fc.constantFrom(1, 5, 6, 7, 9, 10, 11, 12, 17, 18, 25, 26),
  }),
  fc.record({ kind: fc.constant("dropNode"), node: pos }),
);
type StructuredMutation = typeof structuredMutation extends fc.Arbitrary<infer T> ? T : never;

const pick = <T>(list: T[], at: number): T | undefined =>
  list.length ? list[at % list.length] : undefined;

function mutateModel(base: Obj, muts: StructuredMutation[]): Obj {
  const m = structuredClone(base);
  const g = m.graph as Obj;
  const nodes = g.node as Obj[];
  for (const mut of muts) {
    switch (mut.kind) {
      case "dims": {
        const t = pick(g.initializer as Obj[], mut.which);
        if (t && t.dims.length) t.dims[mut.dim % t.dims.length] = mut.value;
        break;
      }
      case "dropInitializer":
        if (g.initializer.length) g.initializer.splice(mut.which % g.initializer.length, 1);
        break;
      case "dataType": {
        const t = pick(g.initializer as Obj[], mut.which);
        if (t) t.data_type = mut.value;
        break;
      }
      case "attrType":
      case "attrValue": {
        const a = pick((pick(nodes, mut.node)?.attribute ?? []) as Obj[], mut.which);
        if (!a) break;
        const v = mut.kind === "attrValue" ? mut.value : 2;
        const to = mut.kind === "attrValue"
          ? (a.type === 1 ? "f" : a.type === 7 ? "ints" : "i")
          : mut.to;
        for (const k of ["f", "i", "s", "floats", "ints"]) delete a[k];
        const codes = { f: 1, i: 2, s: 3, floats: 6, ints: 7 } as const;
        a.type = codes[to];
        a[to] = to === "s"
          ? new TextEncoder().encode(String(v))
          : to === "f" || to === "i"
          ? v
          : [v, v];
        break;
      }
      case "cycle": {
        // An input of a node now reads an output of itself or of a node after it.
        if (!nodes.length) break;
        const k = mut.node % nodes.length;
        const later = nodes.slice(k);
        const src = later[mut.from % later.length];
        const node = nodes[k];
        if (node.input.length && src.output.length) {
          node.input[mut.input % node.input.length] = src.output[0] || "loop";
        }
        break;
      }
      case "rewire": {
        const node = pick(nodes, mut.node);
        if (node?.input.length) node.input[mut.input % node.input.length] = mut.to;
        break;
      }
      case "opType": {
        const node = pick(nodes, mut.node);
        if (node) node.op_type = mut.to;
        break;
      }
      case "duplicateOutput": {
        const a = pick(nodes, mut.node), b = pick(nodes, mut.other);
        if (a && b && a.output.length && b.output.length) b.output[0] = a.output[0];
        break;
      }
      case "inputDims": {
        const v = pick(g.input as Obj[], mut.which);
        const dims = v?.type?.tensor_type?.shape?.dim as Obj[] | undefined;
        if (dims?.length) dims[mut.dim % dims.length] = mut.value as Obj;
        break;
      }
      case "opset":
        m.opset_import[0].version = mut.value;
        break;
      case "dropNode":
        if (nodes.length) nodes.splice(mut.node % nodes.length, 1);
        break;
    }
  }
  return m;
}

Deno.test("parseOnnx imports or refuses 1,200 structurally mutated models with KilnErrors only", async () => {
  const base = modelObject(zooSpec());
  const r = await fuzz(
    fc.array(structuredMutation, { minLength: 1, maxLength: 3 }),
    (muts) => encodeModel(mutateModel(base, muts)),
    1200,
    0x0e2,
  );
  console.log(
    `structurally mutated ONNX models: ${r.ran} imported and ran, ${r.refused} refused ` +
      `(KilnError), ${r.seconds.toFixed(1)} s, slowest case ${r.slowest.toFixed(0)} ms; codes so ` +
      `far ${JSON.stringify(CODES)}`,
  );
  assert.equal(r.ran + r.refused, 1200);
  assert.ok(r.ran >= 50 && r.refused >= 300, JSON.stringify(r));
  assert.ok(r.slowest < 5000, `a case took ${r.slowest} ms`);
});
