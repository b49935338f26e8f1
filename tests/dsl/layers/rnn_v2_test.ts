import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import { type Dim, N } from "../../../dsl/ir/dims.ts";
import { Network } from "../../../dsl/network.ts";
import { RNN_GATES, type RnnGateWeights, RNNv2Layer } from "../../../dsl/layers/rnn_v2.ts";
import {
  onnxGruToGates,
  onnxLstmToGates,
  onnxRnnToGates,
} from "../../../parsers/onnx/rnn_gates.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";
import { type OnnxTensor, readModel, readTensorFile, SHARED_DATA } from "../../_onnx_tensors.ts";

type Op = "lstm" | "gru" | "rnn_relu" | "rnn_tanh";
const OPS: Op[] = ["lstm", "gru", "rnn_relu", "rnn_tanh"];

interface Config {
  op: Op;
  hidden: number;
  steps: number;
  embedding: number;
  layers?: number;
  bidirectional?: boolean;
  skip?: boolean;
}

/** One gate's parameters; W absent in skip mode at layer 0, biases absent = zero. */
interface GateParams {
  W?: Float32Array;
  R: Float32Array;
  bW?: Float32Array;
  bR?: Float32Array;
}
/** params[pseudoLayer][gate], pseudoLayer = l·dirs + dir. */
type Params = Record<string, GateParams>[];

const dirsOf = (c: Config) => (c.bidirectional ? 2 : 1);

function randomParams(c: Config, r: () => number, biases = true): Params {
  const h = c.hidden, dirs = dirsOf(c), params: Params = [];
  for (let li = 0; li < (c.layers ?? 1) * dirs; li++) {
    const l = Math.floor(li / dirs);
    const inSize = l === 0 ? c.embedding : dirs * h;
    const gates: Record<string, GateParams> = {};
    for (const g of RNN_GATES[c.op]) {
      gates[g] = {
        W: c.skip && l === 0 ? undefined : randomArray(h * inSize, r, -0.6, 0.6),
        R: randomArray(h * h, r, -0.6, 0.6),
        bW: biases ? randomArray(h, r, -0.5, 0.5) : undefined,
        bR: biases ? randomArray(h, r, -0.5, 0.5) : undefined,
      };
    }
    params.push(gates);
  }
  return params;
}

// ---------------------------------------------------------------------------------------------
// The reference: textbook cell equations in float64, one item and one step at a time.

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** M·v for M row-major [M.length / v.length × v.length]. */
function matVec(m: ArrayLike<number>, v: readonly number[]): number[] {
  const cols = v.length, out = new Array<number>(m.length / cols).fill(0);
  for (let i = 0; i < out.length; i++) {
    for (let k = 0; k < cols; k++) out[i] += m[i * cols + k] * v[k];
  }
  return out;
}

const bias = (b: ArrayLike<number> | undefined, j: number) => (b ? b[j] : 0);

interface RefOptions {
  h0?: ArrayLike<number>;
  c0?: ArrayLike<number>;
  lengths?: ArrayLike<number>;
  /** ONNX's GRU default (false): h̃ = tanh(Wh x + bWh + Rh (r ⊙ h) + bRh). */
  linearBeforeReset?: boolean;
}

function referenceRnn(c: Config, p: Params, x: ArrayLike<number>, n: number, o: RefOptions = {}) {
  const { hidden: h, steps, embedding: e } = c;
  const dirs = dirsOf(c), layers = c.layers ?? 1, states = layers * dirs;
  const y: number[] = [], hT: number[] = [], cT: number[] = [];
  const lbr = o.linearBeforeReset ?? true;
  for (let b = 0; b < n; b++) {
    const len = o.lengths ? o.lengths[b] : steps;
    let seq: number[][] = [];
    for (let t = 0; t < steps; t++) {
      seq.push(Array.from({ length: e }, (_, k) => x[(b * steps + t) * e + k]));
    }
    const hFinal: number[][] = [], cFinal: number[][] = [];
    for (let l = 0; l < layers; l++) {
      const out = seq.map(() => new Array<number>(dirs * h).fill(0));
      for (let d = 0; d < dirs; d++) {
        const li = l * dirs + d, g = p[li];
        const init = (s: ArrayLike<number> | undefined) =>
          Array.from({ length: h }, (_, j) => (s ? s[(b * states + li) * h + j] : 0));
        let hs = init(o.h0), cs = init(o.c0);
        const order = Array.from({ length: len }, (_, i) => (d === 0 ? i : len - 1 - i));
        for (const t of order) {
          const xt = seq[t];
          const wx = (name: string) => c.skip && l === 0 ? xt : matVec(g[name].W!, xt);
          // a_gate = W x + bW + R h + bR
          const act = (name: string) => {
            const u = wx(name), rh = matVec(g[name].R, hs);
            return u.map((v, j) => v + bias(g[name].bW, j) + rh[j] + bias(g[name].bR, j));
          };
          if (c.op === "lstm") {
            const i = act("input").map(sigmoid), f = act("forget").map(sigmoid);
            const og = act("output").map(sigmoid), cand = act("cell").map(Math.tanh);
            cs = cs.map((cv, j) => f[j] * cv + i[j] * cand[j]);
            hs = cs.map((cv, j) => og[j] * Math.tanh(cv));
          } else if (c.op === "gru") {
            const z = act("update").map(sigmoid), r = act("reset").map(sigmoid);
            const u = wx("hidden"), gh = g.hidden;
            const rec = lbr
              ? matVec(gh.R, hs).map((v, j) => r[j] * (v + bias(gh.bR, j)))
              : matVec(gh.R, hs.map((v, j) => r[j] * v)).map((v, j) => v + bias(gh.bR, j));
            const cand = u.map((v, j) => Math.tanh(v + bias(gh.bW, j) + rec[j]));
            hs = hs.map((hv, j) => (1 - z[j]) * cand[j] + z[j] * hv);
          } else {
            const a = act("input");
            hs = a.map(c.op === "rnn_relu" ? (v) => Math.max(0, v) : Math.tanh);
          }
          for (let j = 0; j < h; j++) out[t][d * h + j] = hs[j];
        }
        hFinal[li] = hs;
        cFinal[li] = cs;
      }
      seq = out;
    }
    for (const v of seq) y.push(...v);
    for (let li = 0; li < states; li++) hT.push(...hFinal[li]), cT.push(...cFinal[li]);
  }
  return { y, hT, cT };
}

// ---------------------------------------------------------------------------------------------
// Kiln side.

interface NetOptions {
  /** dims[0] of every input: the symbolic batch N by default. */
  batch?: Dim;
  h0?: boolean;
  c0?: boolean;
  lengths?: boolean;
}

function buildRnn(c: Config, p: Params, o: NetOptions = {}) {
  const net = new Network();
  const batch = o.batch ?? N, states = (c.layers ?? 1) * dirsOf(c);
  const ins = [net.input("x", [batch, c.steps, c.embedding])];
  if (o.h0) ins.push(net.input("h0", [batch, states, c.hidden]));
  if (o.c0) ins.push(net.input("c0", [batch, states, c.hidden]));
  if (o.lengths) ins.push(net.input("lengths", [batch], "int32"));
  const rnn = net.addRNNv2(ins, {
    op: c.op,
    hiddenSize: c.hidden,
    layers: c.layers ?? 1,
    direction: c.bidirectional ? "bidirectional" : "unidirectional",
    inputMode: c.skip ? "skip" : "linear",
    maxSeqLen: c.steps,
    hasHiddenState: !!o.h0,
    hasCellState: !!o.c0,
    hasSequenceLengths: !!o.lengths,
    name: "rnn",
  });
  p.forEach((gates, li) => {
    for (const [gate, g] of Object.entries(gates) as [keyof typeof gates & string, GateParams][]) {
      const name = gate as (typeof RNN_GATES)[Op][number];
      if (g.W) rnn.setWeightsForGate(li, name, true, g.W);
      if (g.R) rnn.setWeightsForGate(li, name, false, g.R);
      if (g.bW) rnn.setBiasForGate(li, name, true, g.bW);
      if (g.bR) rnn.setBiasForGate(li, name, false, g.bR);
    }
  });
  net.markOutput(rnn.output(0), "y");
  net.markOutput(rnn.output(1), "hT");
  if (c.op === "lstm") net.markOutput(rnn.output(2), "cT");
  return { net, rnn };
}

interface Case {
  n: number;
  x: Float32Array;
  h0?: Float32Array;
  c0?: Float32Array;
  lengths?: Int32Array;
}

function randomCase(c: Config, n: number, r: () => number, states = false): Case {
  const s = (c.layers ?? 1) * dirsOf(c) * c.hidden;
  return {
    n,
    x: randomArray(n * c.steps * c.embedding, r),
    h0: states ? randomArray(n * s, r) : undefined,
    c0: states && c.op === "lstm" ? randomArray(n * s, r) : undefined,
  };
}

/** Runs Kiln on the CPU and compares all outputs with the reference (rtol 1e-5). */
async function checkAgainstReference(c: Config, p: Params, k: Case, o: NetOptions = {}) {
  const { net } = buildRnn(c, p, {
    ...o,
    h0: !!k.h0,
    c0: !!k.c0,
    lengths: !!k.lengths,
  });
  const feeds: Record<string, Float32Array | Int32Array> = { x: k.x };
  if (k.h0) feeds.h0 = k.h0;
  if (k.c0) feeds.c0 = k.c0;
  if (k.lengths) feeds.lengths = k.lengths;
  const out = await runOnCpu(net, feeds, { batchSize: o.batch === undefined ? k.n : undefined });
  const want = referenceRnn(c, p, k.x, k.n, { h0: k.h0, c0: k.c0, lengths: k.lengths });
  const tol = { rtol: 1e-5, atol: 1e-6 };
  assertClose(out.y, want.y, tol, `${c.op} y`);
  assertClose(out.hT, want.hT, tol, `${c.op} hT`);
  if (c.op === "lstm") assertClose(out.cT, want.cT, tol, `${c.op} cT`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Numerical tests against the reference.

Deno.test("RNNv2 every op, uni- and bidirectional, 1 and 2 layers, batch 3 of N", async (t) => {
  const r = rng(11);
  for (const op of OPS) {
    for (const bidirectional of [false, true]) {
      for (const layers of [1, 2]) {
        const c: Config = { op, hidden: 5, steps: 4, embedding: 3, layers, bidirectional };
        await t.step(`${op} ${bidirectional ? "bi" : "uni"} ${layers} layer(s)`, async () => {
          await checkAgainstReference(c, randomParams(c, r), randomCase(c, 3, r));
        });
      }
    }
  }
});

Deno.test("RNNv2 batch 1 and 3 through the symbolic batch; a fixed unbatched batch", async () => {
  const r = rng(12);
  const c: Config = {
    op: "lstm",
    hidden: 4,
    steps: 3,
    embedding: 6,
    layers: 2,
    bidirectional: true,
  };
  const p = randomParams(c, r);
  await checkAgainstReference(c, p, randomCase(c, 1, r, true));
  await checkAgainstReference(c, p, randomCase(c, 3, r, true));
  await checkAgainstReference(c, p, randomCase(c, 3, r, true), { batch: 3 });
});

Deno.test("RNNv2 missing biases are zero", async () => {
  const r = rng(13);
  for (const op of OPS) {
    const c: Config = { op, hidden: 3, steps: 3, embedding: 2 };
    await checkAgainstReference(c, randomParams(c, r, false), randomCase(c, 2, r));
  }
});

Deno.test("RNNv2 skip input mode adds the input directly at the first layer only", async () => {
  const r = rng(14);
  for (const op of OPS) {
    const c: Config = { op, hidden: 4, steps: 3, embedding: 4, layers: 2, bidirectional: true };
    const k = randomCase(c, 3, r);
    // Skip keeps activations small for rnn_relu only when weights are; the reference is exact.
    await checkAgainstReference({ ...c, skip: true }, randomParams({ ...c, skip: true }, r), k);
  }
});

Deno.test("RNNv2 initial hidden and cell states", async () => {
  const r = rng(15);
  for (const op of OPS) {
    const c: Config = { op, hidden: 4, steps: 3, embedding: 3, layers: 2, bidirectional: true };
    await checkAgainstReference(c, randomParams(c, r), randomCase(c, 3, r, true));
  }
});

Deno.test("RNNv2 sequence lengths: zero outputs past the end, a zero length keeps h0", async () => {
  const r = rng(16);
  for (const op of OPS) {
    for (const bidirectional of [false, true]) {
      const c: Config = { op, hidden: 3, steps: 5, embedding: 2, layers: 2, bidirectional };
      const k = { ...randomCase(c, 4, r, true), lengths: Int32Array.from([5, 0, 2, 1]) };
      const out = await checkAgainstReference(c, randomParams(c, r), k);
      const h = c.hidden, dirs = dirsOf(c), states = 2 * dirs, row = c.steps * dirs * h;
      // Item 1 has length 0: every output is zero and the final states are the initial ones.
      assert.ok(out.y.slice(row, 2 * row).every((v) => v === 0), `${op}: item 1 y not zero`);
      assertClose(
        out.hT.slice(states * h, 2 * states * h),
        k.h0!.slice(states * h, 2 * states * h),
        { rtol: 0, atol: 0 },
        `${op} hT of the empty sequence`,
      );
      if (op === "lstm") {
        assertClose(
          out.cT.slice(states * h, 2 * states * h),
          k.c0!.slice(states * h, 2 * states * h),
          { rtol: 0, atol: 0 },
          `${op} cT of the empty sequence`,
        );
      }
      // Item 2 has length 2: steps 2..4 are zero, steps 0..1 are not.
      const item2 = out.y.slice(2 * row, 3 * row);
      assert.ok(item2.slice(2 * dirs * h).every((v) => v === 0), `${op}: item 2 past its end`);
      assert.ok(item2.slice(0, 2 * dirs * h).some((v) => v !== 0), `${op}: item 2 empty`);
    }
  }
});

Deno.test("RNNv2 sequence lengths outside [0, T] are refused at run time", async () => {
  const r = rng(17);
  const c: Config = { op: "gru", hidden: 2, steps: 3, embedding: 2 };
  const { net } = buildRnn(c, randomParams(c, r), { lengths: true });
  for (const bad of [4, -1]) {
    await assert.rejects(
      runOnCpu(net, { x: randomArray(2 * 3 * 2, r), lengths: Int32Array.from([1, bad]) }, {
        batchSize: 2,
      }),
      (e: unknown) =>
        e instanceof KilnError && e.layer === "rnn" &&
        e.message.includes(`sequence length ${bad} of batch item 1 is outside [0, 3]`),
    );
  }
});

Deno.test("RNNv2 rnn() shortcut with gates and tensors; setHiddenState/setSequenceLengths", async () => {
  const r = rng(18);
  const c: Config = { op: "gru", hidden: 3, steps: 4, embedding: 2, bidirectional: true };
  const p = randomParams(c, r);
  const gates: RnnGateWeights[] = p.flatMap((gs, li) =>
    Object.entries(gs).map(([gate, g]) => ({ layerIndex: li, gate: gate as "update", ...g }))
  );
  const k = { ...randomCase(c, 3, r, true), lengths: Int32Array.from([4, 1, 3]) };
  const want = referenceRnn(c, p, k.x, 3, { h0: k.h0, lengths: k.lengths });

  const net = new Network();
  const x = net.input("x", [N, 4, 2]);
  const h0 = net.input("h0", [N, 2, 3]);
  const lengths = net.input("lengths", [N], "int32");
  const y = x.rnn({
    op: "gru",
    hiddenSize: 3,
    direction: "bidirectional",
    hiddenState: h0,
    sequenceLengths: lengths,
    gates,
  });
  assert.deepEqual(y.dims, [N, 4, 6]);
  net.markOutput(y, "y");
  const out = await runOnCpu(net, { x: k.x, h0: k.h0!, lengths: k.lengths }, { batchSize: 3 });
  assertClose(out.y, want.y, { rtol: 1e-5, atol: 1e-6 }, "shortcut y");

  // The same through the layer's setters, added after the layer.
  const net2 = new Network();
  const x2 = net2.input("x", [N, 4, 2]);
  const rnn = net2.addRNNv2(x2, { op: "gru", hiddenSize: 3, direction: "bidirectional" });
  assert.ok(rnn instanceof RNNv2Layer);
  rnn.setGates(gates)
    .setSequenceLengths(net2.input("lengths", [N], "int32"))
    .setHiddenState(net2.input("h0", [N, 2, 3]));
  assert.deepEqual(rnn.inputs.map((t) => t.name), ["x", "h0", "lengths"]);
  net2.markOutput(rnn.output(0), "y");
  const out2 = await runOnCpu(net2, { x: k.x, h0: k.h0!, lengths: k.lengths }, { batchSize: 3 });
  assertClose(out2.y, want.y, { rtol: 1e-5, atol: 1e-6 }, "setter y");
});

// ---------------------------------------------------------------------------------------------
// Errors.

function expectError(f: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("RNNv2 verify() names every missing gate weight", () => {
  const r = rng(19);
  const c: Config = {
    op: "lstm",
    hidden: 3,
    steps: 2,
    embedding: 2,
    layers: 2,
    bidirectional: true,
  };
  const p = randomParams(c, r);
  delete (p[3].forget as Partial<GateParams>).R; // layer 1, backward
  delete p[0].cell.W; // layer 0, forward
  const { net } = buildRnn(c, p);
  assert.throws(() => net.verify(), (e: unknown) => {
    assert.ok(e instanceof KilnError && e.code === "INVALID_NETWORK");
    assert.match(
      e.message,
      /layer "rnn": weights "l1\.bwd\.forget\.R" are missing \(expected dims \[3,3\]\)/,
    );
    assert.match(e.message, /weights "l0\.fwd\.cell\.W" are missing \(expected dims \[3,2\]\)/);
    assert.equal(e.problems.length, 2);
    return true;
  });
  // Unidirectional slots carry no direction.
  const u: Config = { op: "rnn_tanh", hidden: 2, steps: 2, embedding: 2 };
  const pu = randomParams(u, r);
  delete pu[0].input.W;
  assert.throws(() => buildRnn(u, pu).net.verify(), /weights "l0\.input\.W" are missing/);
});

Deno.test("RNNv2 bad attributes and inputs are named errors", () => {
  const add = (attrs: Record<string, unknown>, dims: Dim[] = [N, 4, 3], extra: Dim[][] = []) => {
    const net = new Network();
    const ins = [net.input("x", dims)];
    extra.forEach((d, i) => ins.push(net.input(`e${i}`, d)));
    return net.addLayer("RNNv2", ins, { name: "rnn", ...attrs });
  };
  const lstm = { op: "lstm", hiddenSize: 3 };
  expectError(() => add({ op: "lstmx", hiddenSize: 3 }), "INVALID_ATTRIBUTE", /attribute "op"/);
  expectError(() => add({ op: "gru" }), "INVALID_ATTRIBUTE", /attribute "hiddenSize"/);
  expectError(() => add({ ...lstm, hiddenSize: 0 }), "INVALID_ATTRIBUTE", /"hiddenSize"/);
  expectError(() => add({ ...lstm, layers: 0 }), "INVALID_ATTRIBUTE", /"layers"/);
  expectError(() => add({ ...lstm, layers: 1.5 }), "INVALID_ATTRIBUTE", /"layers"/);
  expectError(() => add({ ...lstm, direction: "both" }), "INVALID_ATTRIBUTE", /"direction"/);
  expectError(() => add({ ...lstm, inputMode: "none" }), "INVALID_ATTRIBUTE", /"inputMode"/);
  expectError(() => add(lstm, [N, 12]), "SHAPE_MISMATCH", /rank 3/);
  expectError(() => add({ ...lstm, maxSeqLen: 5 }), "SHAPE_MISMATCH", /maxSeqLen 5 .* 4/);
  expectError(
    () => add({ op: "gru", hiddenSize: 4, inputMode: "skip" }),
    "SHAPE_MISMATCH",
    /embedding size \(3\) must equal hiddenSize \(4\)/,
  );
  assert.equal(add({ ...lstm, inputMode: "skip" }).outputs.length, 3); // E == H: fine
  expectError(
    () => add({ op: "gru", hiddenSize: 3, hasCellState: true }, [N, 4, 3], [[N, 1, 3]]),
    "SHAPE_MISMATCH",
    /only lstm has a cell state/,
  );
  expectError(() => add({ ...lstm, hasHiddenState: true }), "SHAPE_MISMATCH", /takes 2 input/);
  expectError(() => add(lstm, [N, 4, 3], [[N, 1, 3]]), "SHAPE_MISMATCH", /takes 1 input/);
  expectError(
    () => add({ ...lstm, layers: 2, hasHiddenState: true }, [N, 4, 3], [[N, 1, 3]]),
    "SHAPE_MISMATCH",
    /hiddenState \(input 1\) must be \[N,2,3\]/,
  );
  expectError(
    () => add({ ...lstm, hasSequenceLengths: true }, [N, 4, 3], [[N]]),
    "SHAPE_MISMATCH",
    /sequenceLengths \(input 1\) must be \[N\] int32; got \[N\] float32/,
  );
});

Deno.test("RNNv2 setWeightsForGate checks the gate, the layer index and the size", () => {
  const net = new Network();
  const x = net.input("x", [N, 4, 3]);
  const rnn = net.addRNNv2(x, {
    op: "lstm",
    hiddenSize: 2,
    layers: 2,
    direction: "bidirectional",
    name: "rnn",
  });
  const w = (n: number) => new Float32Array(n).fill(0.5);
  rnn.setWeightsForGate(0, "forget", true, w(6)); // [2, 3]
  rnn.setWeightsForGate(3, "forget", true, w(8)); // layer 1 reads 2·2 = 4 values
  assert.ok(rnn.weights.has("l0.fwd.forget.W") && rnn.weights.has("l1.bwd.forget.W"));
  expectError(
    () => rnn.setWeightsForGate(0, "update", true, w(6)),
    "INVALID_ARGUMENT",
    /lstm has no gate "update"; its gates are input, output, forget, cell/,
  );
  expectError(
    () => rnn.setWeightsForGate(4, "cell", false, w(4)),
    "INVALID_ARGUMENT",
    /layerIndex 4 is out of range \[0, 4\)/,
  );
  expectError(
    () => rnn.setWeightsForGate(1, "cell", true, w(8)),
    "INVALID_ARGUMENT",
    /"l0\.bwd\.cell\.W" must be 6 float32 values \(dims \[2,3\]\); got 8/,
  );
  expectError(
    () => rnn.setBiasForGate(1, "cell", false, w(3)),
    "INVALID_ARGUMENT",
    /"l0\.bwd\.cell\.bR" must be 2/,
  );
  expectError(() => rnn.setWeights("l0.forget.W", w(6)), "INVALID_ARGUMENT", /not a weight slot/);
  // A refused size leaves the earlier weights in place.
  expectError(
    () => rnn.setWeightsForGate(0, "forget", true, w(5)),
    "INVALID_ARGUMENT",
    /must be 6/,
  );
  assert.equal(rnn.weights.get("l0.fwd.forget.W")!.values.length, 6);

  const skip = net.addRNNv2(net.input("s", [N, 4, 2]), {
    op: "gru",
    hiddenSize: 2,
    inputMode: "skip",
  });
  expectError(
    () => skip.setWeightsForGate(0, "reset", true, w(4)),
    "INVALID_ARGUMENT",
    /skip input mode the first layer has no W/,
  );
  skip.setBiasForGate(0, "reset", true, w(2)); // bW stays: it is added to the input
});

// ---------------------------------------------------------------------------------------------
// ONNX conformance data (onnx/backend/test/data/node), converted with parsers/onnx/rnn_gates.ts.

const ONNX_DIR = new URL("onnx-node-tests/", SHARED_DATA);
const ONNX_CASES = [...Deno.readDirSync(ONNX_DIR)]
  .map((d) => d.name)
  .filter((name) => /^test_(lstm|gru|rnn|simple_rnn)_/.test(name))
  .sort();

interface OnnxCase {
  op: "LSTM" | "GRU" | "RNN";
  attrs: Record<string, unknown>;
  /** Node inputs by position (X, W, R, B, sequence_lens, initial_h, initial_c, P). */
  inputs: (OnnxTensor | undefined)[];
  outputs: Record<string, OnnxTensor>;
}

function loadOnnxCase(name: string): OnnxCase {
  const dir = new URL(`${name}/`, ONNX_DIR);
  const model = readModel(new URL("model.onnx", dir));
  assert.equal(model.nodes.length, 1, `${name}: one node expected`);
  const node = model.nodes[0];
  const byName = new Map<string, OnnxTensor>();
  model.inputs.forEach((n, i) => {
    byName.set(n, readTensorFile(new URL(`test_data_set_0/input_${i}.pb`, dir)));
  });
  const outputs: Record<string, OnnxTensor> = {};
  model.outputs.forEach((n, i) => {
    const k = node.outputs.indexOf(n); // 0: Y, 1: Y_h, 2: Y_c
    outputs[["Y", "Y_h", "Y_c"][k]] = readTensorFile(
      new URL(`test_data_set_0/output_${i}.pb`, dir),
    );
  });
  return {
    op: node.opType as OnnxCase["op"],
    attrs: node.attrs,
    inputs: node.inputs.map((n) => (n ? byName.get(n) : undefined)),
    outputs,
  };
}

/** Why a case cannot match RNNv2 (undefined when it can). */
function unsupportedBecause(k: OnnxCase): string | undefined {
  if (k.op === "GRU" && (k.attrs.linear_before_reset ?? 0) === 0) {
    return "linear_before_reset=0; RNNv2's GRU, as TensorRT's, is linear_before_reset=1";
  }
  if (k.inputs[7]) return "LSTM peepholes (input P) have no RNNv2 equivalent";
  if (k.attrs.direction === "reverse") return "direction reverse has no RNNv2 equivalent";
  if (k.attrs.activations || k.attrs.clip || k.attrs.input_forget) {
    return "custom activations, clip or input_forget have no RNNv2 equivalent";
  }
  return undefined;
}

/** Moves dims [a, b, rest] to [b, a, rest]. */
function swap01(t: Float32Array | Int32Array, a: number, b: number, rest: number): Float32Array {
  const out = new Float32Array(t.length);
  for (let i = 0; i < a; i++) {
    for (let j = 0; j < b; j++) {
      for (let k = 0; k < rest; k++) out[(j * a + i) * rest + k] = t[(i * b + j) * rest + k];
    }
  }
  return out;
}

function onnxGates(k: OnnxCase) {
  const [, W, R, B] = k.inputs;
  const directions = k.attrs.direction === "bidirectional" ? 2 : 1;
  const w = {
    W: W!.data as Float32Array,
    R: R!.data as Float32Array,
    B: B?.data as Float32Array | undefined,
    hiddenSize: k.attrs.hidden_size as number,
    directions,
  } as const;
  return k.op === "LSTM"
    ? onnxLstmToGates(w)
    : k.op === "GRU"
    ? onnxGruToGates(w)
    : onnxRnnToGates(w);
}

/** X, states and outputs of a case in RNNv2's layout ([B, T, I], [B, dirs, H], ...). */
function kilnLayout(k: OnnxCase) {
  const X = k.inputs[0]!;
  const batchwise = k.attrs.layout === 1;
  const [d0, d1, inSize] = X.dims;
  const [batch, steps] = batchwise ? [d0, d1] : [d1, d0];
  const h = k.attrs.hidden_size as number;
  const dirs = k.attrs.direction === "bidirectional" ? 2 : 1;
  const toBatchMajor = (t: OnnxTensor | undefined, a: number, b: number, rest: number) =>
    t && (batchwise ? Float32Array.from(t.data) : swap01(t.data, a, b, rest));
  // Y is [T, dirs, B, H] (layout 0) or [B, T, dirs, H] (layout 1); RNNv2's y is [B, T, dirs·H].
  let y: Float32Array | undefined;
  if (k.outputs.Y) {
    const Y = k.outputs.Y.data;
    y = batchwise ? Float32Array.from(Y) : new Float32Array(Y.length);
    if (!batchwise) {
      for (let t = 0; t < steps; t++) {
        for (let d = 0; d < dirs; d++) {
          for (let b = 0; b < batch; b++) {
            for (let j = 0; j < h; j++) {
              y[((b * steps + t) * dirs + d) * h + j] = Y[((t * dirs + d) * batch + b) * h + j];
            }
          }
        }
      }
    }
  }
  return {
    batch,
    steps,
    inSize,
    h,
    dirs,
    x: toBatchMajor(X, steps, batch, inSize)!,
    h0: toBatchMajor(k.inputs[5], dirs, batch, h),
    c0: toBatchMajor(k.inputs[6], dirs, batch, h),
    lengths: k.inputs[4] && Int32Array.from(k.inputs[4].data),
    y,
    hT: toBatchMajor(k.outputs.Y_h, dirs, batch, h),
    cT: toBatchMajor(k.outputs.Y_c, dirs, batch, h),
  };
}

async function runOnnxCaseInKiln(k: OnnxCase) {
  const v = kilnLayout(k);
  const op = k.op === "LSTM" ? "lstm" : k.op === "GRU" ? "gru" : "rnn_tanh";
  const net = new Network();
  const ins = [net.input("x", [N, v.steps, v.inSize])];
  if (v.h0) ins.push(net.input("h0", [N, v.dirs, v.h]));
  if (v.c0) ins.push(net.input("c0", [N, v.dirs, v.h]));
  if (v.lengths) ins.push(net.input("lengths", [N], "int32"));
  const rnn = net.addRNNv2(ins, {
    op,
    hiddenSize: v.h,
    direction: v.dirs === 2 ? "bidirectional" : "unidirectional",
    hasHiddenState: !!v.h0,
    hasCellState: !!v.c0,
    hasSequenceLengths: !!v.lengths,
  });
  rnn.setGates(onnxGates(k));
  net.markOutput(rnn.output(0), "y");
  net.markOutput(rnn.output(1), "hT");
  if (op === "lstm") net.markOutput(rnn.output(2), "cT");
  const feeds: Record<string, Float32Array | Int32Array> = { x: v.x };
  if (v.h0) feeds.h0 = v.h0;
  if (v.c0) feeds.c0 = v.c0;
  if (v.lengths) feeds.lengths = v.lengths;
  return { v, out: await runOnCpu(net, feeds, { batchSize: v.batch }) };
}

Deno.test("ONNX conformance data holds the LSTM, GRU and RNN cases this file runs", () => {
  assert.ok(ONNX_CASES.length >= 9, `found ${ONNX_CASES.join(", ")}`);
  const runnable = ONNX_CASES.filter((n) => !unsupportedBecause(loadOnnxCase(n)));
  assert.ok(runnable.length >= 5, `runnable: ${runnable.join(", ")}`);
});

for (const name of ONNX_CASES) {
  const k = loadOnnxCase(name);
  const why = unsupportedBecause(k);
  Deno.test({
    name: `RNNv2 matches ONNX ${name}${why ? ` (skipped: ${why})` : ""}`,
    ignore: why !== undefined,
    fn: async () => {
      const { v, out } = await runOnnxCaseInKiln(k);
      const tol = { rtol: 1e-3, atol: 1e-6 };
      let compared = 0;
      if (v.y) assertClose(out.y, v.y, tol, `${name} Y`), compared++;
      if (v.hT) assertClose(out.hT, v.hT, tol, `${name} Y_h`), compared++;
      if (v.cT) assertClose(out.cT, v.cT, tol, `${name} Y_c`), compared++;
      assert.ok(compared > 0, `${name}: no output to compare`);
    },
  });
}

Deno.test("onnxGruToGates feeds a linear_before_reset=0 reference that reproduces ONNX", () => {
  // RNNv2 does not run these nodes (see the skipped cases above). A float64
  // linear_before_reset=0 reference fed with the converted gates checks the conversion and the
  // layout handling on ONNX's own outputs. (Every W and R entry of these cases is one constant,
  // so all hidden units are equal and the two GRU conventions, and the gate order, cannot be
  // told apart by this data: the next test pins the gate order on random weights.)
  const cases = ONNX_CASES.map(loadOnnxCase).filter((k) =>
    k.op === "GRU" && !k.attrs.linear_before_reset
  );
  assert.ok(cases.length >= 1);
  for (const k of cases) {
    const v = kilnLayout(k);
    const c: Config = {
      op: "gru",
      hidden: v.h,
      steps: v.steps,
      embedding: v.inSize,
      bidirectional: v.dirs === 2,
    };
    const p: Params = [];
    for (const g of onnxGates(k)) (p[g.layerIndex] ??= {})[g.gate] = g as GateParams;
    const want = referenceRnn(c, p, v.x, v.batch, {
      h0: v.h0,
      lengths: v.lengths,
      linearBeforeReset: false,
    });
    if (v.y) assertClose(want.y, v.y, { rtol: 1e-3, atol: 1e-6 }, "reference Y");
    assertClose(want.hT, v.hT!, { rtol: 1e-3, atol: 1e-6 }, "reference Y_h");
  }
});

Deno.test("onnx*ToGates slice W, R and B per the ONNX spec's gate order", () => {
  // ONNX: W[dir] = [W_1; ...; W_G] with LSTM iofc, GRU zrh; B[dir] = [Wb_1..Wb_G, Rb_1..Rb_G].
  const r = rng(20);
  const h = 3, inSize = 2, dirs = 2;
  const spec = [
    { convert: onnxLstmToGates, order: ["input", "output", "forget", "cell"] },
    { convert: onnxGruToGates, order: ["update", "reset", "hidden"] },
    { convert: onnxRnnToGates, order: ["input"] },
  ];
  for (const { convert, order } of spec) {
    const g = order.length;
    const W = randomArray(dirs * g * h * inSize, r), R = randomArray(dirs * g * h * h, r);
    const B = randomArray(dirs * 2 * g * h, r);
    const gates = convert({ W, R, B, hiddenSize: h, directions: dirs });
    assert.equal(gates.length, dirs * g);
    for (let d = 0; d < dirs; d++) {
      order.forEach((name, k) => {
        const got = gates.find((x) => x.layerIndex === d && x.gate === name)!;
        const block = (a: Float32Array, rows: number, cols: number, at: number) =>
          Array.from(a.subarray(at * rows * cols, (at + 1) * rows * cols));
        assert.deepEqual(Array.from(got.W as Float32Array), block(W, h, inSize, d * g + k));
        assert.deepEqual(Array.from(got.R as Float32Array), block(R, h, h, d * g + k));
        assert.deepEqual(Array.from(got.bW as Float32Array), block(B, 1, h, d * 2 * g + k));
        assert.deepEqual(Array.from(got.bR as Float32Array), block(B, 1, h, d * 2 * g + g + k));
      });
    }
    // No B: zero biases.
    const noBias = convert({ W, R, hiddenSize: h, directions: dirs });
    assert.ok(noBias.every((x) => (x.bW as Float32Array).every((v) => v === 0)));
  }
});

Deno.test("onnx*ToGates refuse tensors of the wrong size", () => {
  const h = 2;
  const ok = {
    W: new Float32Array(4 * h * 3),
    R: new Float32Array(4 * h * h),
    hiddenSize: h,
    directions: 1,
  } as const;
  assert.equal(onnxLstmToGates(ok).length, 4);
  expectError(
    () => onnxLstmToGates({ ...ok, R: new Float32Array(5) }),
    "INVALID_ARGUMENT",
    /R has 5 values; \[1, 8, 2\] = 16 expected/,
  );
  expectError(
    () => onnxLstmToGates({ ...ok, W: new Float32Array(7) }, { node: "lstm_1" }),
    "INVALID_ARGUMENT",
    /node "lstm_1": W has 7 values/,
  );
  expectError(
    () => onnxGruToGates({ ...ok, B: new Float32Array(3) }),
    "INVALID_ARGUMENT",
    /GRU: R has|GRU: W has/,
  );
  expectError(
    () =>
      onnxRnnToGates({
        W: new Float32Array(6),
        R: new Float32Array(4),
        B: new Float32Array(3),
        hiddenSize: 2,
        directions: 1,
      }),
    "INVALID_ARGUMENT",
    /B has 3 values; \[1, 4\] = 4 expected/,
  );
  // Layer 1 of a bidirectional stack fills pseudo-layers 2 and 3.
  const bi = onnxRnnToGates({
    W: new Float32Array(2 * 2 * 3),
    R: new Float32Array(2 * 4),
    hiddenSize: 2,
    directions: 2,
  }, { layer: 1 });
  assert.deepEqual(bi.map((g) => [g.layerIndex, g.gate]), [[2, "input"], [3, "input"]]);
});
