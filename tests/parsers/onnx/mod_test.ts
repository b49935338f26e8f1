/**
 * parseOnnx: bindings, the symbolic batch, the checker pass, graph structure, opset-dependent
 * attributes, constant folding of shape arithmetic, external weights and refusals. Models are
 * written with _build.ts; numbers are checked against the float64 evaluator in _reference.ts or
 * direct formulas written here, on seeded random inputs.
 */
import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import { N } from "../../../dsl/ir/dims.ts";
import { parseOnnx } from "../../../parsers/onnx/mod.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";
import { f, i, ints, modelBytes, type ModelSpec, s, strings, t } from "./_build.ts";
import { evaluate, type RefTensor } from "./_reference.ts";

async function refusal(p: Promise<unknown>, code: string, ...words: RegExp[]): Promise<KilnError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof KilnError, `not a KilnError: ${e}`);
    assert.equal(e.code, code, e.message);
    for (const w of words) assert.match(e.message, w);
    return e;
  }
  assert.fail("expected a KilnError");
}

/** Writes a model to a temporary file (the reference evaluator reads files). */
async function tempModel(m: ModelSpec): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".onnx" });
  await Deno.writeFile(path, modelBytes(m));
  return path;
}

const relu = (x: string, y: string) => ({ op: "Relu", inputs: [x], outputs: [y] });

Deno.test("parseOnnx lists every unsupported node in one error, before importing any", async () => {
  const bytes = modelBytes({
    opsets: [{ domain: "com.microsoft", version: 1 }],
    inputs: [{ name: "x", dims: [1, 4] }],
    outputs: [{ name: "y", dims: [1, 4] }],
    nodes: [
      // Would fail at import (no such reshape), but the checker runs first.
      { op: "Reshape", inputs: ["x", "bad_shape"], outputs: ["a"], name: "early" },
      { op: "NonMaxSuppression", inputs: ["a"], outputs: ["b"], name: "nms" },
      { op: "Gelu", inputs: ["b"], outputs: ["c"], name: "gelu", domain: "com.microsoft" },
      { op: "Pad", inputs: ["c"], outputs: ["d"], name: "wrap", attrs: { mode: s("wrap") } },
      {
        op: "LSTM",
        inputs: ["d"],
        outputs: ["y"],
        name: "lstm",
        attrs: { hidden_size: i(4), activations: strings(["Relu", "Tanh", "Tanh"]) },
      },
    ],
    initializers: [{ name: "bad_shape", type: 7, dims: [1], values: [7] }],
  });
  const e = await refusal(
    parseOnnx(bytes),
    "UNSUPPORTED",
    /4 node\(s\) cannot be imported/,
    /NonMaxSuppression \(domain ai\.onnx, opset 13\) node 1 "nms": no importer/,
    /Gelu \(domain com\.microsoft, opset 1\) node 2 "gelu"/,
    /Pad \(domain ai\.onnx, opset 13\) node 3 "wrap": mode "wrap"/,
    /LSTM \(domain ai\.onnx, opset 13\) node 4 "lstm": activations \[Relu, Tanh, Tanh\]/,
  );
  assert.deepEqual(e.problems.map((p) => p.layer), ["nms", "gelu", "wrap", "lstm"]);
});

Deno.test("parseOnnx sorts nodes into topological order and names dangling values and cycles", async () => {
  const r = rng(1);
  const x = randomArray(6, r);
  const { network } = await parseOnnx(modelBytes({
    inputs: [{ name: "x", dims: [2, 3] }],
    outputs: [{ name: "y", dims: [2, 3] }],
    nodes: [
      { op: "Neg", inputs: ["b"], outputs: ["y"] },
      { op: "Exp", inputs: ["a"], outputs: ["b"] },
      relu("x", "a"),
    ],
  }));
  const out = await runOnCpu(network, { x });
  assertClose(out.y, x.map((v) => -Math.exp(Math.max(v, 0))), { rtol: 1e-6 });

  await refusal(
    parseOnnx(modelBytes({
      inputs: [{ name: "x", dims: [2] }],
      outputs: [{ name: "y", dims: [2] }],
      nodes: [relu("missing", "y")],
    })),
    "PARSE_ERROR",
    /Relu node 0 "relu0" reads "missing", which no node, initializer or graph input provides/,
  );
  await refusal(
    parseOnnx(modelBytes({
      inputs: [{ name: "x", dims: [2] }],
      outputs: [{ name: "y", dims: [2] }],
      nodes: [
        { op: "Add", inputs: ["x", "c"], outputs: ["a"], name: "first" },
        relu("a", "b"),
        relu("b", "c"),
        relu("a", "y"),
      ],
    })),
    "PARSE_ERROR",
    /cycle through 3 node\(s\): Add node 0 "first", Relu node 1 "relu1", Relu node 2 "relu2"/,
  );
  await refusal(
    parseOnnx(modelBytes({
      inputs: [{ name: "x", dims: [2] }],
      outputs: [{ name: "y", dims: [2] }],
      nodes: [relu("x", "y"), relu("x", "y")],
    })),
    "PARSE_ERROR",
    /value "y" is written twice/,
  );
});

/** A small CNN with a symbolic batch: Conv → BatchNorm → Relu → MaxPool → Flatten → Gemm → Softmax. */
function cnn(batchDim: string | number): ModelSpec {
  const r = rng(2);
  return {
    opset: 11,
    inputs: [{ name: "image", dims: [batchDim, 2, 6, 6] }],
    outputs: [{ name: "prob", dims: [batchDim, 5] }],
    nodes: [
      {
        op: "Conv",
        inputs: ["image", "w", "b"],
        outputs: ["c"],
        attrs: { kernel_shape: ints([3, 3]), pads: ints([1, 0, 1, 2]), strides: ints([1, 1]) },
      },
      {
        op: "BatchNormalization",
        inputs: ["c", "gamma", "beta", "mean", "var"],
        outputs: ["bn"],
        attrs: { epsilon: f(1e-3) },
      },
      relu("bn", "r"),
      {
        op: "MaxPool",
        inputs: ["r"],
        outputs: ["p"],
        attrs: { kernel_shape: ints([2, 2]), strides: ints([2, 2]) },
      },
      { op: "Flatten", inputs: ["p"], outputs: ["flat"] },
      { op: "Gemm", inputs: ["flat", "fc", "fcb"], outputs: ["logits"], attrs: { transB: i(1) } },
      { op: "Softmax", inputs: ["logits"], outputs: ["prob"] },
    ],
    initializers: [
      { name: "w", dims: [3, 2, 3, 3], values: randomArray(54, r) },
      { name: "b", dims: [3], values: randomArray(3, r) },
      { name: "gamma", dims: [3], values: randomArray(3, r, 0.5, 1.5) },
      { name: "beta", dims: [3], values: randomArray(3, r) },
      { name: "mean", dims: [3], values: randomArray(3, r) },
      { name: "var", dims: [3], values: randomArray(3, r, 0.5, 2) },
      // Conv output 3x6x6 (pads top 1, bottom 1, left 0, right 2) → pool 3x3x3 = 27.
      { name: "fc", dims: [5, 27], values: randomArray(135, r) },
      { name: "fcb", dims: [5], values: randomArray(5, r) },
    ],
  };
}

Deno.test("parseOnnx makes a symbolic leading dim the batch N, runs batch 1 and 3 like the reference", async () => {
  const spec = cnn("batch");
  const { network } = await parseOnnx(modelBytes(spec));
  assert.deepEqual(network.inputs[0].dims, [N, 2, 6, 6]);
  assert.deepEqual(network.outputs[0].dims, [N, 5]);
  assert.equal(network.outputs[0].name, "prob");
  const path = await tempModel(cnn(3));
  const r = rng(3);
  for (const batch of [1, 3]) {
    const image = randomArray(batch * 72, r);
    const out = await runOnCpu(network, { image }, { batchSize: batch, maxBatchSize: 3 });
    const ref = evaluate(path, {
      image: { dims: [batch, 2, 6, 6], data: Float64Array.from(image) },
    });
    assertClose(out.prob, ref.prob.data, { rtol: 1e-4, atol: 1e-6 }, `batch ${batch}`);
  }
  // A dim with no value at all is the batch too.
  const unknown = await parseOnnx(modelBytes(cnn(undefined as unknown as string)));
  assert.deepEqual(unknown.network.inputs[0].dims, [N, 2, 6, 6]);
});

Deno.test("parseOnnx refuses symbolic inner dims, naming the input, and inputShapes fixes them", async () => {
  const spec: ModelSpec = {
    inputs: [{ name: "seq", dims: ["batch", "time", 4] }],
    outputs: [{ name: "y" }],
    nodes: [relu("seq", "y")],
  };
  const e = await refusal(
    parseOnnx(modelBytes(spec)),
    "UNSUPPORTED",
    /"seq" dim 1 is symbolic \("time"\)/,
  );
  assert.equal(e.tensor, "seq");
  const { network } = await parseOnnx(modelBytes(spec), { inputShapes: { seq: [N, 7, 4] } });
  assert.deepEqual(network.inputs[0].dims, [N, 7, 4]);
  await refusal(
    parseOnnx(modelBytes(spec), { inputShapes: { nope: [1] } }),
    "INVALID_ARGUMENT",
    /inputShapes names "nope"/,
  );
});

Deno.test("parseOnnx carries int64 inputs and outputs as int32 bindings", async () => {
  const { network } = await parseOnnx(modelBytes({
    inputs: [{ name: "ids", type: 7, dims: [2, 3] }],
    outputs: [{ name: "rows", dims: [2, 3, 4] }, { name: "best", type: 7, dims: [2, 3] }],
    nodes: [
      { op: "Gather", inputs: ["table", "ids"], outputs: ["rows"] },
      {
        op: "ArgMax",
        inputs: ["rows"],
        outputs: ["best"],
        attrs: { axis: i(-1), keepdims: i(0) },
      },
    ],
    initializers: [{ name: "table", dims: [5, 4], values: randomArray(20, rng(4)) }],
  }));
  assert.equal(network.inputs[0].dtype, "int32");
  assert.deepEqual(network.outputs.map((o) => [o.name, o.dtype]), [["rows", "float32"], [
    "best",
    "int32",
  ]]);
  const table = randomArray(20, rng(4));
  const ids = Int32Array.from([4, 0, -1, 2, 3, 1]);
  const out = await runOnCpu(network, { ids });
  const want = Array.from(ids).flatMap((k) =>
    Array.from(table.subarray((k + 5) % 5 * 4, ((k + 5) % 5 + 1) * 4))
  );
  assertClose(out.rows, want, { rtol: 0, atol: 0 });
  const best = Array.from(ids, (k) => {
    const row = Array.from(table.subarray((k + 5) % 5 * 4, ((k + 5) % 5 + 1) * 4));
    return row.indexOf(Math.max(...row));
  });
  assert.deepEqual(Array.from(out.best), best);
});

Deno.test("parseOnnx folds shape arithmetic, keeping the batch N through Shape/Gather/Concat", async () => {
  // PyTorch's flatten: Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])).
  const { network } = await parseOnnx(modelBytes({
    opset: 11,
    inputs: [{ name: "x", dims: ["n", 3, 4] }],
    outputs: [{ name: "y" }],
    nodes: [
      { op: "Shape", inputs: ["x"], outputs: ["shape"] },
      { op: "Gather", inputs: ["shape", "zero"], outputs: ["n"], attrs: { axis: i(0) } },
      { op: "Unsqueeze", inputs: ["n"], outputs: ["n1"], attrs: { axes: ints([0]) } },
      { op: "Concat", inputs: ["n1", "minus1"], outputs: ["target"], attrs: { axis: i(0) } },
      { op: "Reshape", inputs: ["x", "target"], outputs: ["y"] },
    ],
    initializers: [
      { name: "zero", type: 7, dims: [], values: [0] },
      { name: "minus1", type: 7, dims: [1], values: [-1] },
    ],
  }));
  assert.deepEqual(network.outputs[0].dims, [N, 12]);
  assert.deepEqual(network.layers.map((l) => l.kind), ["Shuffle"]);
  const x = randomArray(24, rng(5));
  const out = await runOnCpu(network, { x }, { batchSize: 2 });
  assertClose(out.y, x, { rtol: 0, atol: 0 });

  // Arithmetic on N has no representation: refused, naming the node.
  await refusal(
    parseOnnx(modelBytes({
      inputs: [{ name: "x", dims: ["n", 3] }],
      outputs: [{ name: "y" }],
      nodes: [
        { op: "Shape", inputs: ["x"], outputs: ["shape"] },
        { op: "ReduceProd", inputs: ["shape"], outputs: ["total"], attrs: { keepdims: i(1) } },
        { op: "Reshape", inputs: ["x", "total"], outputs: ["y"] },
      ],
    })),
    "UNSUPPORTED",
    /ReduceProd node 1 .*symbolic batch N/,
  );
});

Deno.test("parseOnnx reads attributes before and inputs after each op's opset change", async () => {
  const r = rng(6);
  const x = randomArray(2 * 3 * 4, r);
  const at = (a: number, b: number, c: number) => x[(a * 3 + b) * 4 + c];
  // Slice: attributes (opset 9) and inputs (opset 10+); Unsqueeze/Squeeze: attribute (11), input (13).
  const slice9 = await parseOnnx(modelBytes({
    opset: 9,
    inputs: [{ name: "x", dims: [2, 3, 4] }],
    outputs: [{ name: "y" }],
    nodes: [
      {
        op: "Slice",
        inputs: ["x"],
        outputs: ["s"],
        attrs: { starts: ints([1, -3]), ends: ints([3, 100]), axes: ints([1, 2]) },
      },
      { op: "Unsqueeze", inputs: ["s"], outputs: ["y"], attrs: { axes: ints([0]) } },
    ],
  }));
  const slice13 = await parseOnnx(modelBytes({
    opset: 13,
    inputs: [{ name: "x", dims: [2, 3, 4] }],
    outputs: [{ name: "y" }],
    nodes: [
      { op: "Slice", inputs: ["x", "st", "en", "ax", "sp"], outputs: ["s"] },
      { op: "Unsqueeze", inputs: ["s", "zero"], outputs: ["y"] },
    ],
    initializers: [
      { name: "st", type: 7, dims: [2], values: [1, -3] },
      { name: "en", type: 7, dims: [2], values: [3, 9223372036854775807] },
      { name: "ax", type: 7, dims: [2], values: [1, 2] },
      { name: "sp", type: 7, dims: [2], values: [1, 1] },
      { name: "zero", type: 7, dims: [1], values: [0] },
    ],
  }));
  const want: number[] = [];
  for (let a = 0; a < 2; a++) {
    for (let b = 1; b < 3; b++) for (let c = 1; c < 4; c++) want.push(at(a, b, c));
  }
  for (const { network } of [slice9, slice13]) {
    assert.deepEqual(network.outputs[0].dims, [1, 2, 2, 3]);
    assertClose((await runOnCpu(network, { x })).y, want, { rtol: 0, atol: 0 });
  }

  // Softmax: before opset 13 the dims from `axis` are one row; from 13, one axis.
  const softmax = (opset: number) =>
    parseOnnx(modelBytes({
      opset,
      inputs: [{ name: "x", dims: [2, 3, 4] }],
      outputs: [{ name: "y" }],
      nodes: [{ op: "Softmax", inputs: ["x"], outputs: ["y"], attrs: { axis: i(1) } }],
    }));
  const rowSoftmax = (rows: number, len: number, stride: number, inner: number) => {
    const y = new Array<number>(x.length);
    for (let o = 0; o < rows; o++) {
      for (let k = 0; k < inner; k++) {
        const idx = Array.from({ length: len }, (_, j) => o * len * inner + j * stride + k);
        const m = Math.max(...idx.map((q) => x[q]));
        const sum = idx.reduce((acc, q) => acc + Math.exp(x[q] - m), 0);
        for (const q of idx) y[q] = Math.exp(x[q] - m) / sum;
      }
    }
    return y;
  };
  assertClose((await runOnCpu((await softmax(11)).network, { x })).y, rowSoftmax(2, 12, 1, 1), {
    rtol: 1e-5,
  });
  assertClose((await runOnCpu((await softmax(13)).network, { x })).y, rowSoftmax(2, 3, 4, 4), {
    rtol: 1e-5,
  });

  // Clip: attributes min/max (opset 6) and optional inputs (opset 11+, max left out here).
  const clip6 = await parseOnnx(modelBytes({
    opset: 6,
    inputs: [{ name: "x", dims: [24] }],
    outputs: [{ name: "y" }],
    nodes: [{ op: "Clip", inputs: ["x"], outputs: ["y"], attrs: { min: f(-0.5), max: f(0.25) } }],
  }));
  const clip13 = await parseOnnx(modelBytes({
    opset: 13,
    inputs: [{ name: "x", dims: [24] }],
    outputs: [{ name: "y" }],
    nodes: [{ op: "Clip", inputs: ["x", "lo"], outputs: ["y"] }],
    initializers: [{ name: "lo", dims: [], values: [-0.5] }],
  }));
  assertClose(
    (await runOnCpu(clip6.network, { x })).y,
    x.map((v) => Math.min(0.25, Math.max(-0.5, v))),
  );
  assertClose((await runOnCpu(clip13.network, { x })).y, x.map((v) => Math.max(-0.5, v)));
});

Deno.test("parseOnnx imports a bidirectional RNN with initial state and sequence lengths", async () => {
  const r = rng(8);
  const [T, B, I, H] = [4, 3, 2, 3];
  const w = randomArray(2 * H * I, r), rr = randomArray(2 * H * H, r), bias = randomArray(4 * H, r);
  const spec = (withLens: boolean): ModelSpec => ({
    inputs: [
      { name: "x", dims: [T, B, I] },
      { name: "h0", dims: [2, B, H] },
      ...(withLens ? [{ name: "lens", type: 6, dims: [B] }] : []),
    ],
    outputs: [{ name: "y" }, { name: "yh" }],
    nodes: [{
      op: "RNN",
      inputs: ["x", "W", "R", "B", withLens ? "lens" : "", "h0"],
      outputs: ["y", "yh"],
      attrs: {
        hidden_size: i(H),
        direction: s("bidirectional"),
        activations: strings(["Tanh", "Tanh"]),
      },
    }],
    initializers: [
      { name: "W", dims: [2, H, I], values: w },
      { name: "R", dims: [2, H, H], values: rr },
      { name: "B", dims: [2, 2 * H], values: bias },
    ],
  });
  const x = randomArray(T * B * I, r), h0 = randomArray(2 * B * H, r);
  const lens = Int32Array.from([4, 1, 3]);
  const path = await tempModel(spec(true));
  const ref = evaluate(path, {
    x: { dims: [T, B, I], data: Float64Array.from(x) },
    h0: { dims: [2, B, H], data: Float64Array.from(h0) },
    lens: { dims: [B], data: Float64Array.from(lens) },
  });
  const { network } = await parseOnnx(modelBytes(spec(true)));
  assert.deepEqual(network.outputs.map((o) => o.dims), [[T, 2, B, H], [2, B, H]]);
  const out = await runOnCpu(network, { x, h0, lens });
  assertClose(out.y, ref.y.data, { rtol: 1e-5, atol: 1e-6 }, "Y");
  assertClose(out.yh, ref.yh.data, { rtol: 1e-5, atol: 1e-6 }, "Y_h");
});

/** An LSTM or GRU node, layout 1 with a symbolic batch, bidirectional, states and lengths. */
function recurrentSpec(
  op: "LSTM" | "GRU",
  extra: Record<string, ReturnType<typeof i>>,
  peepholes: boolean,
) {
  const r = rng(op === "LSTM" ? 12 : 13);
  const [T, I, H] = [4, 3, 2];
  const G = op === "LSTM" ? 4 : 3;
  const inputs = ["x", "W", "R", "B", "lens", "h0", ...(op === "LSTM" ? ["c0"] : [])];
  if (peepholes) inputs.push("P");
  const spec: ModelSpec = {
    opset: 14,
    inputs: [
      { name: "x", dims: ["n", T, I] },
      { name: "lens", type: 6, dims: ["n"] },
      { name: "h0", dims: ["n", 2, H] },
      ...(op === "LSTM" ? [{ name: "c0", dims: ["n", 2, H] }] : []),
    ],
    outputs: [{ name: "y" }, { name: "yh" }],
    nodes: [{
      op,
      inputs,
      outputs: ["y", "yh"],
      attrs: { hidden_size: i(H), direction: s("bidirectional"), layout: i(1), ...extra },
    }],
    initializers: [
      { name: "W", dims: [2, G * H, I], values: randomArray(2 * G * H * I, r) },
      { name: "R", dims: [2, G * H, H], values: randomArray(2 * G * H * H, r) },
      { name: "B", dims: [2, 2 * G * H], values: randomArray(4 * G * H, r) },
      ...(peepholes ? [{ name: "P", dims: [2, 3 * H], values: randomArray(6 * H, r) }] : []),
    ],
  };
  return { spec, T, I, H };
}

Deno.test("parseOnnx imports LSTM and GRU (RNNv2 or unrolled) like the reference, batch N", async () => {
  const cases: [string, "LSTM" | "GRU", Record<string, ReturnType<typeof i>>, boolean][] = [
    ["GRU linear_before_reset=1 (RNNv2)", "GRU", { linear_before_reset: i(1) }, false],
    ["GRU linear_before_reset=0 (unrolled)", "GRU", {}, false],
    ["LSTM (RNNv2)", "LSTM", {}, false],
    ["LSTM with peepholes (unrolled)", "LSTM", {}, true],
  ];
  for (const [what, op, extra, peepholes] of cases) {
    const { spec, T, I, H } = recurrentSpec(op, extra, peepholes);
    const { network } = await parseOnnx(modelBytes(spec));
    const unrolled = !network.layers.some((l) => l.kind === "RNNv2");
    assert.equal(unrolled, what.includes("unrolled"), what);
    assert.deepEqual(network.outputs.map((o) => o.dims), [[N, T, 2, H], [N, 2, H]], what);
    const path = await tempModel(spec);
    const r = rng(14);
    const B = 3;
    const x = randomArray(B * T * I, r), h0 = randomArray(B * 2 * H, r);
    const c0 = randomArray(B * 2 * H, r), lens = Int32Array.from([4, 1, 3]);
    const feed: Record<string, Float32Array | Int32Array> = { x, h0, lens };
    const ref: Record<string, RefTensor> = {
      x: { dims: [B, T, I], data: Float64Array.from(x) },
      h0: { dims: [B, 2, H], data: Float64Array.from(h0) },
      lens: { dims: [B], data: Float64Array.from(lens) },
    };
    if (op === "LSTM") {
      feed.c0 = c0;
      ref.c0 = { dims: [B, 2, H], data: Float64Array.from(c0) };
    }
    const want = evaluate(path, ref);
    const out = await runOnCpu(network, feed, { batchSize: B, maxBatchSize: 4 });
    assertClose(out.y, want.y.data, { rtol: 1e-5, atol: 1e-6 }, `${what}: Y`);
    assertClose(out.yh, want.yh.data, { rtol: 1e-5, atol: 1e-6 }, `${what}: Y_h`);
  }
});

Deno.test("parseOnnx reads external weights from the model's folder and refuses escaping paths", async () => {
  const dir = await Deno.makeTempDir();
  const weights = Float32Array.from([1, 2, 3, 4, 5, 6]);
  const file = new Uint8Array(8 + weights.byteLength);
  file.set(new Uint8Array(weights.buffer), 8);
  await Deno.writeFile(`${dir}/w.bin`, file);
  const spec = (location: string): ModelSpec => ({
    inputs: [{ name: "x", dims: [2, 3] }],
    outputs: [{ name: "y" }],
    nodes: [{ op: "Add", inputs: ["x", "w"], outputs: ["y"] }],
    initializers: [{
      name: "w",
      dims: [2, 3],
      values: [],
      external: { location, offset: 8, length: 24 },
    }],
  });
  await Deno.writeFile(`${dir}/model.onnx`, modelBytes(spec("w.bin")));
  const x = randomArray(6, rng(9));
  const { network } = await parseOnnx(`${dir}/model.onnx`);
  assertClose((await runOnCpu(network, { x })).y, x.map((v, k) => v + weights[k]), {
    rtol: 0,
    atol: 0,
  });
  // The same model as bytes needs baseDir.
  await refusal(parseOnnx(modelBytes(spec("w.bin"))), "INVALID_ARGUMENT", /external file "w.bin"/);
  await parseOnnx(modelBytes(spec("w.bin")), { baseDir: dir });
  await refusal(
    parseOnnx(modelBytes(spec("../w.bin")), { baseDir: dir }),
    "PARSE_ERROR",
    /leaves the model's folder/,
  );
  await refusal(parseOnnx(modelBytes(spec("gone.bin")), { baseDir: dir }), "IO_ERROR", /gone\.bin/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("parseOnnx refuses bad files, versions and attributes with KilnErrors that say where", async () => {
  // Field 7 (graph) claims 100 bytes; 2 follow.
  await refusal(
    parseOnnx(new Uint8Array([0x3a, 100, 0x0a, 0x00])),
    "PARSE_ERROR",
    /<model>: not a valid ModelProto \(index out of range/,
  );
  await refusal(parseOnnx(new Uint8Array([0x08, 0x03])), "PARSE_ERROR", /the model has no graph/);
  await refusal(parseOnnx("/nonexistent/model.onnx"), "IO_ERROR", /nonexistent/);
  const ok: ModelSpec = {
    inputs: [{ name: "x", dims: [2] }],
    outputs: [{ name: "y" }],
    nodes: [relu("x", "y")],
  };
  await refusal(parseOnnx(modelBytes({ ...ok, irVersion: 2 })), "UNSUPPORTED", /IR version 2/);
  await refusal(parseOnnx(modelBytes({ ...ok, opset: 5 })), "UNSUPPORTED", /opset 5/);
  await refusal(
    parseOnnx(modelBytes({
      ...ok,
      nodes: [{ op: "LeakyRelu", inputs: ["x"], outputs: ["y"], attrs: { alpha: i(1) } }],
    })),
    "INVALID_ATTRIBUTE",
    /LeakyRelu node 0 "leakyrelu0": attribute "alpha" is INT; FLOAT expected/,
  );
  await refusal(
    parseOnnx(modelBytes({
      inputs: [{ name: "x", dims: [2, 3] }],
      outputs: [{ name: "y" }],
      nodes: [{ op: "Reshape", inputs: ["x", "shape"], outputs: ["y"] }],
      initializers: [{ name: "shape", type: 7, dims: [1], values: [7] }],
    })),
    "INVALID_ARGUMENT",
    /Reshape node 0 "reshape0": shape INT64 \[1\] \{7\} holds 7 elements; the input \[2,3\] has 6/,
  );
  await refusal(
    parseOnnx(modelBytes({
      inputs: [{ name: "x", dims: [2, 3] }],
      outputs: [{ name: "y" }],
      nodes: [{ op: "Add", inputs: ["x", "w"], outputs: ["y"] }],
      initializers: [{ name: "w", dims: [4], values: [1, 2, 3, 4] }],
    })),
    "SHAPE_MISMATCH",
    /Add node 0 "add0".*do not broadcast/,
  );
  await refusal(
    parseOnnx(modelBytes({
      inputs: [{ name: "x", dims: [1, 1, 4, 4] }],
      outputs: [{ name: "y" }],
      nodes: [{ op: "Conv", inputs: ["x", "w"], outputs: ["y"] }],
      initializers: [{ name: "w", dims: [2, 1, 3, 3], values: new Array(17).fill(1) }],
    })),
    "PARSE_ERROR",
    /initializer "w".*raw_data holds 68 bytes; FLOAT \[2, 1, 3, 3\] needs 72/,
  );
  // The batch stays first: mnist-style [1, 256] targets do not fit a batched input.
  await refusal(
    parseOnnx(modelBytes({
      inputs: [{ name: "x", dims: ["n", 4, 4] }],
      outputs: [{ name: "y" }],
      nodes: [{ op: "Reshape", inputs: ["x", "shape"], outputs: ["y"] }],
      initializers: [{ name: "shape", type: 7, dims: [2], values: [1, 16] }],
    })),
    "UNSUPPORTED",
    /fold the symbolic batch N/,
  );
});

Deno.test("parseOnnx gives bindings to constant outputs and to outputs that are inputs", async () => {
  const { network, diagnostics } = await parseOnnx(modelBytes({
    inputs: [{ name: "x", dims: [3] }],
    outputs: [{ name: "x_again" }, { name: "c" }, { name: "x" }],
    nodes: [
      { op: "Identity", inputs: ["x"], outputs: ["x_again"] },
      {
        op: "Constant",
        inputs: [],
        outputs: ["c"],
        attrs: { value: t({ dims: [2], values: [7, 8] }) },
      },
    ],
  }));
  // An output that is also the input: the input keeps the name.
  assert.deepEqual(network.outputs.map((o) => o.name), ["x_again", "c", "x/output"]);
  assert.equal(network.inputs[0].name, "x");
  assert.ok(diagnostics.some((d) => /graph output "c" is a constant/.test(d.message)));
  assert.ok(
    diagnostics.some((d) => /"x" is also a graph input: .* named "x\/output"/.test(d.message)),
  );
  const x = Float32Array.from([1, -2, 3]);
  const out = await runOnCpu(network, { x });
  assert.deepEqual(Array.from(out.x_again), [1, -2, 3]);
  assert.deepEqual(Array.from(out["x/output"]), [1, -2, 3]);
  assert.deepEqual(Array.from(out.c), [7, 8]);
});
