/**
 * Gate-layout converters: random weights in each framework's layout, converted and run in Kiln
 * (RNNv2 on the CPU backend), against an independent implementation of that framework's
 * convention: tfjs (TensorFlow's own JavaScript port) for TensorFlow cells and Keras layers, and
 * references written here from the documented equations where tfjs has no equivalent (Keras GRU
 * with reset_after=True, TF GRUCell) and for PyTorch.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { KilnError } from "../../../errors.ts";
import { N } from "../../../dsl/ir/dims.ts";
import { Network } from "../../../dsl/network.ts";
import {
  applyGates,
  type ConvertedRnn,
  gateList,
  kerasGruGates,
  kerasLstmGates,
  onnxGruGates,
  onnxLstmGates,
  type TensorLike,
  tfGruCellGates,
  tfLstmCellGates,
  torchGruGates,
  torchLstmGates,
} from "../../../parsers/tf/gates.ts";
import { readCheckpoint } from "../../../parsers/tf/checkpoint.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

await tf.setBackend("cpu");

const TOL = { rtol: 1e-5, atol: 1e-6 };
const T = 5, E = 4, H = 3;

type T32 = { dims: number[]; values: Float32Array };
const rand = (r: () => number, ...dims: number[]): T32 => ({
  dims,
  values: randomArray(dims.reduce((a, b) => a * b, 1), r, -0.6, 0.6),
});

/** Runs converted weights in Kiln: input x [n, steps, E] → y, hT (and cT for LSTM). */
async function runKiln(
  c: ConvertedRnn,
  x: Float32Array,
  n: number,
  steps: number,
  viaShortcut = false,
) {
  const net = new Network();
  const xin = net.input("x", [N, steps, c.inputSizes[0]]);
  const attrs = {
    op: c.op,
    hiddenSize: c.hiddenSize,
    layers: c.layers.length / c.directions,
    direction: c.directions === 2 ? "bidirectional" as const : "unidirectional" as const,
    name: "rnn",
  };
  if (viaShortcut) {
    net.markOutput(xin.rnn({ ...attrs, gates: gateList(c) }), "y");
  } else {
    const rnn = applyGates(net.addRNNv2([xin], attrs), c);
    net.markOutput(rnn.output(0), "y");
    net.markOutput(rnn.output(1), "hT");
    if (c.op === "lstm") net.markOutput(rnn.output(2), "cT");
  }
  const out = await runOnCpu(net, { x }, { batchSize: n });
  return out as Record<string, Float32Array>;
}

// ---------------------------------------------------------------------------------------------
// TensorFlow BasicLSTMCell / MultiRNNCell, against tfjs's basicLSTMCell + multiRNNCell

function tfjsMultiCell(
  cells: { kernel: T32; bias: T32 }[],
  forgetBias: number,
  x: Float32Array,
  n: number,
  steps: number,
  e: number,
  h: number,
) {
  return tf.tidy(() => {
    const fns = cells.map((cell) => {
      const k = tf.tensor2d(cell.kernel.values, cell.kernel.dims as [number, number]);
      const b = tf.tensor1d(cell.bias.values);
      return (data: tf.Tensor2D, c: tf.Tensor2D, hh: tf.Tensor2D) =>
        tf.basicLSTMCell(forgetBias, k, b, data, c, hh);
    });
    let c = cells.map(() => tf.zeros([n, h]) as tf.Tensor2D);
    let hs = cells.map(() => tf.zeros([n, h]) as tf.Tensor2D);
    const xs = tf.tensor3d(x, [n, steps, e]);
    const ys: tf.Tensor2D[] = [];
    for (let t = 0; t < steps; t++) {
      const data = xs.slice([0, t, 0], [n, 1, e]).reshape([n, e]) as tf.Tensor2D;
      [c, hs] = tf.multiRNNCell(fns, data, c, hs);
      ys.push(hs[hs.length - 1]);
    }
    return {
      y: tf.stack(ys, 1).dataSync() as Float32Array,
      hT: tf.stack(hs, 1).dataSync() as Float32Array,
      cT: tf.stack(c, 1).dataSync() as Float32Array,
    };
  });
}

Deno.test("tfLstmCellGates: 2-layer BasicLSTMCell matches tfjs multiRNNCell (forget_bias 1 and 0.3)", async () => {
  const r = rng(101);
  for (const [forgetBias, n] of [[1, 3], [0.3, 1]]) {
    const cells = [
      { kernel: rand(r, E + H, 4 * H), bias: rand(r, 4 * H) },
      { kernel: rand(r, H + H, 4 * H), bias: rand(r, 4 * H) },
    ];
    const x = randomArray(n * T * E, r);
    const conv = tfLstmCellGates(cells, { forgetBias });
    assert.deepEqual([conv.op, conv.hiddenSize, conv.directions, conv.inputSizes], ["lstm", H, 1, [
      E,
      H,
    ]]);
    const got = await runKiln(conv, x, n, T);
    const want = tfjsMultiCell(cells, forgetBias, x, n, T, E, H);
    assertClose(got.y, want.y, TOL, `y (forget_bias ${forgetBias})`);
    assertClose(got.hT, want.hT, TOL, "final h");
    assertClose(got.cT, want.cT, TOL, "final c");
  }
});

Deno.test("tfLstmCellGates: the char-rnn checkpoint's cells run like tfjs on real weights", async () => {
  const ck = await readCheckpoint(
    new URL("../../../data/charrnn/model-85340", import.meta.url).pathname,
  );
  const cell = (k: number) => ({
    kernel: ck.float32(`rnn/multi_rnn_cell/cell_${k}/basic_lstm_cell/kernel`),
    bias: ck.float32(`rnn/multi_rnn_cell/cell_${k}/basic_lstm_cell/bias`),
  });
  const cells = [cell(0), cell(1)];
  const conv = tfLstmCellGates(cells, { forgetBias: 0 });
  assert.deepEqual([conv.hiddenSize, conv.inputSizes], [128, [65, 128]]);
  // "ROMEO:" one-hot (vocab.json indices) as one sequence, plus a second, shuffled one.
  const vocab: Record<string, number> = JSON.parse(
    await Deno.readTextFile(new URL("../../../data/charrnn/vocab.json", import.meta.url)),
  );
  const text = ["ROMEO:", "MEO:RO"];
  const steps = 6, x = new Float32Array(2 * steps * 65);
  text.forEach((s, b) => [...s].forEach((ch, t) => (x[(b * steps + t) * 65 + vocab[ch]] = 1)));
  const got = await runKiln(conv, x, 2, steps);
  const want = tfjsMultiCell(cells, 0, x, 2, steps, 65, 128);
  // Trained pre-activations reach ±19, where a float32 ulp is 2e-6, and Kiln rounds W x, R h
  // and the bias separately where tfjs makes one [x, h]·kernel product: 1e-5 relative to the
  // outputs' range (|h| ≤ 1; |c| reaches 5) rather than to each value.
  assertClose(got.y, want.y, { rtol: 1e-5, atol: 1e-5 }, "y");
  assertClose(got.cT, want.cT, { rtol: 1e-5, atol: 5e-5 }, "final c");
});

// ---------------------------------------------------------------------------------------------
// Keras LSTM and GRU (reset_after=False), against tfjs's tf.layers

function tfjsKeras(
  kind: "lstm" | "gru",
  layers: { kernel: T32; recurrentKernel: T32; bias: T32 }[][],
  x: Float32Array,
  n: number,
  steps: number,
  e: number,
  h: number,
): Float32Array {
  const model = tf.sequential();
  layers.forEach((dirs, l) => {
    const inner = {
      units: h,
      returnSequences: true,
      recurrentActivation: "sigmoid" as const,
      ...(l === 0 && dirs.length === 1 ? { inputShape: [steps, e] } : {}),
    };
    const rnn = kind === "lstm" ? tf.layers.lstm(inner) : tf.layers.gru(inner);
    model.add(
      dirs.length === 2
        ? tf.layers.bidirectional({
          layer: rnn as tf.RNN,
          mergeMode: "concat",
          ...(l === 0 ? { inputShape: [steps, e] } : {}),
        })
        : rnn,
    );
  });
  model.setWeights(
    layers.flat().flatMap((w) => [
      tf.tensor(w.kernel.values, w.kernel.dims),
      tf.tensor(w.recurrentKernel.values, w.recurrentKernel.dims),
      tf.tensor(w.bias.values, w.bias.dims),
    ]),
  );
  const y = model.predict(tf.tensor3d(x, [n, steps, e])) as tf.Tensor;
  const out = y.dataSync() as Float32Array;
  model.dispose();
  return out;
}

Deno.test("kerasLstmGates: stacked and bidirectional Keras LSTMs match tfjs tf.layers.lstm", async () => {
  const r = rng(202);
  const keras = (inSize: number) => ({
    kernel: rand(r, inSize, 4 * H),
    recurrentKernel: rand(r, H, 4 * H),
    bias: rand(r, 4 * H),
  });
  const n = 3, x = randomArray(n * T * E, r);
  const uni = [keras(E), keras(H)];
  let got = await runKiln(kerasLstmGates(uni), x, n, T);
  assertClose(got.y, tfjsKeras("lstm", uni.map((l) => [l]), x, n, T, E, H), TOL, "y (2 layers)");
  const bi = [[keras(E), keras(E)], [keras(2 * H), keras(2 * H)]];
  const conv = kerasLstmGates(bi.map(([forward, backward]) => ({ forward, backward })));
  assert.deepEqual([conv.directions, conv.inputSizes, conv.layers.length], [2, [E, 2 * H], 4]);
  got = await runKiln(conv, x, n, T);
  assertClose(got.y, tfjsKeras("lstm", bi, x, n, T, E, H), TOL, "y (bidirectional, 2 layers)");
});

Deno.test("kerasGruGates: reset_after=False with a diagonal Rh matches tfjs tf.layers.gru; otherwise refused", async () => {
  const r = rng(303);
  const layer = (inSize: number) => {
    const rk = rand(r, H, 3 * H);
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < H; j++) if (i !== j) rk.values[i * 3 * H + 2 * H + j] = 0;
    }
    return { kernel: rand(r, inSize, 3 * H), recurrentKernel: rk, bias: rand(r, 3 * H) };
  };
  const layers = [layer(E), layer(H)];
  const n = 2, x = randomArray(n * T * E, r);
  const got = await runKiln(kerasGruGates(layers), x, n, T);
  assertClose(got.y, tfjsKeras("gru", layers.map((l) => [l]), x, n, T, E, H), TOL, "y");
  layers[1].recurrentKernel.values[0 * 3 * H + 2 * H + 1] = 0.25;
  assert.throws(() => kerasGruGates(layers), (e: unknown) => {
    assert.ok(e instanceof KilnError);
    assert.equal(e.code, "UNSUPPORTED");
    assert.match(
      e.message,
      /GRU layer 1 \(Keras GRU, reset_after=False\).*\|R\[1\]\[0\]\| = 0\.25/s,
    );
    return true;
  });
});

// ---------------------------------------------------------------------------------------------
// Keras GRU reset_after=True and TF GRUCell: tfjs has neither (its GRUCell rejects resetAfter),
// so the references follow Keras' and TensorFlow's cell code, in each source layout, in float64.

const sig = (v: number) => 1 / (1 + Math.exp(-v));
/** v · M for M row-major [v.length, cols], columns [from, from + count). */
function vecMat(v: number[], m: ArrayLike<number>, cols: number, from: number, count: number) {
  return Array.from(
    { length: count },
    (_, j) => v.reduce((s, vi, i) => s + vi * m[i * cols + from + j], 0),
  );
}

/** keras GRUCell.call with reset_after=True: bias [2, 3H] = input_bias, recurrent_bias. */
function kerasGruResetAfterRef(
  layers: { kernel: T32; recurrentKernel: T32; bias: T32 }[],
  x: Float32Array,
  n: number,
  steps: number,
  e: number,
  h: number,
) {
  const y: number[] = [];
  for (let b = 0; b < n; b++) {
    let seq = Array.from(
      { length: steps },
      (_, t) => Array.from(x.subarray((b * steps + t) * e, (b * steps + t + 1) * e)),
    );
    for (const w of layers) {
      let hs = new Array<number>(h).fill(0);
      const ib = Array.from(w.bias.values.subarray(0, 3 * h)),
        rb = Array.from(w.bias.values.subarray(3 * h));
      seq = seq.map((xt) => {
        const mx = vecMat(xt, w.kernel.values, 3 * h, 0, 3 * h).map((v, j) => v + ib[j]);
        const mi = vecMat(hs, w.recurrentKernel.values, 3 * h, 0, 3 * h).map((v, j) => v + rb[j]);
        const z = mx.slice(0, h).map((v, j) => sig(v + mi[j]));
        const rr = mx.slice(h, 2 * h).map((v, j) => sig(v + mi[h + j]));
        const hh = mx.slice(2 * h).map((v, j) => Math.tanh(v + rr[j] * mi[2 * h + j]));
        hs = hs.map((hv, j) => z[j] * hv + (1 - z[j]) * hh[j]);
        return hs;
      });
    }
    y.push(...seq.flat());
  }
  return y;
}

Deno.test("kerasGruGates: reset_after=True (bias [2, 3H]) matches Keras' GRU equations", async () => {
  const r = rng(404);
  const layer = (inSize: number) => ({
    kernel: rand(r, inSize, 3 * H),
    recurrentKernel: rand(r, H, 3 * H),
    bias: rand(r, 2, 3 * H),
  });
  const layers = [layer(E), layer(H)];
  const n = 3, x = randomArray(n * T * E, r);
  const got = await runKiln(kerasGruGates(layers), x, n, T);
  assertClose(got.y, kerasGruResetAfterRef(layers, x, n, T, E, H), TOL, "y");
  // The same through the rnn shortcut's `gates`.
  const short = await runKiln(kerasGruGates(layers), x, n, T, true);
  assertClose(short.y, got.y, { rtol: 0, atol: 0 }, "y via gateList");
  assert.throws(() => kerasGruGates([{ ...layers[0], bias: undefined }]), /options\.resetAfter/);
});

/** tf.nn.rnn_cell.GRUCell.call: [x, h]·gates → r, u; c = tanh([x, r ⊙ h]·candidate + b). */
function tfGruCellRef(
  cells: { gk: T32; gb: T32; ck: T32; cb: T32 }[],
  x: Float32Array,
  n: number,
  steps: number,
  e: number,
  h: number,
) {
  const y: number[] = [];
  for (let b = 0; b < n; b++) {
    let seq = Array.from(
      { length: steps },
      (_, t) => Array.from(x.subarray((b * steps + t) * e, (b * steps + t + 1) * e)),
    );
    for (const w of cells) {
      let hs = new Array<number>(h).fill(0);
      seq = seq.map((xt) => {
        const g = vecMat([...xt, ...hs], w.gk.values, 2 * h, 0, 2 * h).map((v, j) =>
          sig(v + w.gb.values[j])
        );
        const rr = g.slice(0, h), u = g.slice(h);
        const c = vecMat([...xt, ...hs.map((hv, j) => rr[j] * hv)], w.ck.values, h, 0, h).map((
          v,
          j,
        ) => Math.tanh(v + w.cb.values[j]));
        hs = hs.map((hv, j) => u[j] * hv + (1 - u[j]) * c[j]);
        return hs;
      });
    }
    y.push(...seq.flat());
  }
  return y;
}

Deno.test("tfGruCellGates: a GRUCell with a diagonal candidate Rh matches TF's GRUCell; any other is refused", async () => {
  const r = rng(505);
  const cell = (inSize: number) => {
    const ck = rand(r, inSize + H, H);
    for (let i = 0; i < H; i++) {
      for (let j = 0; j < H; j++) if (i !== j) ck.values[(inSize + i) * H + j] = 0;
    }
    return { gk: rand(r, inSize + H, 2 * H), gb: rand(r, 2 * H), ck, cb: rand(r, H) };
  };
  const cells = [cell(E), cell(H)];
  const asTf = cells.map((c) => ({
    gatesKernel: c.gk,
    gatesBias: c.gb,
    candidateKernel: c.ck,
    candidateBias: c.cb,
  }));
  const n = 2, x = randomArray(n * T * E, r);
  const got = await runKiln(tfGruCellGates(asTf), x, n, T);
  assertClose(got.y, tfGruCellRef(cells, x, n, T, E, H), TOL, "y");
  cells[0].ck.values[(E + 2) * H + 0] = -0.5;
  assert.throws(() => tfGruCellGates(asTf), (e: unknown) => {
    assert.ok(e instanceof KilnError && e.code === "UNSUPPORTED");
    assert.match(e.message, /TF GRUCell.*\(r ⊙ h\)·R.*r ⊙ \(h·R\)/s);
    return true;
  });
});

// ---------------------------------------------------------------------------------------------
// PyTorch nn.LSTM / nn.GRU, against PyTorch's documented equations (torch.nn.LSTM, torch.nn.GRU)

type StateDict = Record<string, T32>;

function torchState(
  op: "lstm" | "gru",
  layers: number,
  bidirectional: boolean,
  r: () => number,
  bias = true,
): StateDict {
  const g = op === "lstm" ? 4 : 3, sd: StateDict = {};
  for (let k = 0; k < layers; k++) {
    for (const sfx of bidirectional ? ["", "_reverse"] : [""]) {
      const inSize = k === 0 ? E : (bidirectional ? 2 : 1) * H;
      sd[`weight_ih_l${k}${sfx}`] = rand(r, g * H, inSize);
      sd[`weight_hh_l${k}${sfx}`] = rand(r, g * H, H);
      if (bias) {
        sd[`bias_ih_l${k}${sfx}`] = rand(r, g * H);
        sd[`bias_hh_l${k}${sfx}`] = rand(r, g * H);
      }
    }
  }
  return sd;
}

/** out = W v + b for W [rows, v.length] (PyTorch's x Wᵀ + b). */
const affine = (w: T32, v: number[], b?: T32) =>
  Array.from(
    { length: w.dims[0] },
    (_, i) => v.reduce((s, vk, k) => s + w.values[i * v.length + k] * vk, b ? b.values[i] : 0),
  );

function torchRef(
  op: "lstm" | "gru",
  sd: StateDict,
  layers: number,
  bidir: boolean,
  x: Float32Array,
  n: number,
  steps: number,
) {
  const dirs = bidir ? 2 : 1, y: number[] = [], hN: number[] = [], cN: number[] = [];
  for (let b = 0; b < n; b++) {
    let seq = Array.from(
      { length: steps },
      (_, t) => Array.from(x.subarray((b * steps + t) * E, (b * steps + t + 1) * E)),
    );
    for (let k = 0; k < layers; k++) {
      const outs = seq.map(() => [] as number[]);
      for (let d = 0; d < dirs; d++) {
        const s = d ? "_reverse" : "", p = (name: string) => sd[`${name}_l${k}${s}`];
        let hs = new Array<number>(H).fill(0), cs = new Array<number>(H).fill(0);
        for (let i = 0; i < steps; i++) {
          const t = d ? steps - 1 - i : i;
          const gi = affine(p("weight_ih"), seq[t], p("bias_ih")),
            gh = affine(p("weight_hh"), hs, p("bias_hh"));
          const chunk = (a: number[], c: number) => a.slice(c * H, (c + 1) * H);
          if (op === "lstm") {
            // i, f, g, o = chunks of W_ih x + b_ih + W_hh h + b_hh
            const sum = gi.map((v, j) => v + gh[j]);
            const ig = chunk(sum, 0).map(sig),
              fg = chunk(sum, 1).map(sig),
              gg = chunk(sum, 2).map(Math.tanh),
              og = chunk(sum, 3).map(sig);
            cs = cs.map((cv, j) => fg[j] * cv + ig[j] * gg[j]);
            hs = cs.map((cv, j) => og[j] * Math.tanh(cv));
          } else {
            // r, z, n; n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)); h' = (1 − z) ⊙ n + z ⊙ h
            const rg = chunk(gi, 0).map((v, j) => sig(v + gh[j]));
            const zg = chunk(gi, 1).map((v, j) => sig(v + gh[H + j]));
            const ng = chunk(gi, 2).map((v, j) => Math.tanh(v + rg[j] * gh[2 * H + j]));
            hs = hs.map((hv, j) => (1 - zg[j]) * ng[j] + zg[j] * hv);
          }
          outs[t].splice(d * H, H, ...hs);
        }
        hN.push(...hs); // laid out [N, layers·dirs, H] like Kiln's final state
        cN.push(...cs);
      }
      seq = outs.map((o) => o.slice(0, dirs * H));
    }
    y.push(...seq.flat());
  }
  return { y, hN, cN };
}

Deno.test("torchLstmGates / torchGruGates: 2-layer bidirectional and unidirectional modules match PyTorch's equations", async () => {
  const r = rng(606);
  for (const op of ["lstm", "gru"] as const) {
    for (
      const [layers, bidir, bias] of [[2, true, true], [2, false, true], [1, false, false]] as const
    ) {
      const sd = torchState(op, layers, bidir, r, bias);
      const conv = op === "lstm" ? torchLstmGates(sd) : torchGruGates(new Map(Object.entries(sd)));
      assert.deepEqual([conv.directions, conv.layers.length], [
        bidir ? 2 : 1,
        layers * (bidir ? 2 : 1),
      ]);
      const n = 3, x = randomArray(n * T * E, r);
      const got = await runKiln(conv, x, n, T);
      const want = torchRef(op, sd, layers, bidir, x, n, T);
      const what = `${op} layers ${layers} bidirectional ${bidir} bias ${bias}`;
      assertClose(got.y, want.y, TOL, `${what}: y`);
      assertClose(got.hT, want.hN, TOL, `${what}: h_n`);
      if (op === "lstm") assertClose(got.cT, want.cN, TOL, `${what}: c_n`);
    }
  }
  // A prefixed state dict (a module's submodule) and a projection.
  const sd = torchState("lstm", 1, false, r);
  const prefixed = Object.fromEntries(Object.entries(sd).map(([k, v]) => [`enc.rnn.${k}`, v]));
  assert.equal(torchLstmGates(prefixed, { prefix: "enc.rnn." }).hiddenSize, H);
  assert.throws(() => torchLstmGates({ ...sd, weight_hr_l0: rand(r, 2, H) }), /proj_size/);
  // LSTM weights read as a GRU: 12 rows make H = 4, which weight_hh [12, 3] contradicts.
  assert.throws(() => torchGruGates(sd), /"weight_hh_l0": dims \[12, 3\]; \[12, 4\] expected/);
});

// ---------------------------------------------------------------------------------------------
// ONNX (converted by parsers/onnx/rnn_gates.ts; here, its regrouping)

Deno.test("onnxLstmGates / onnxGruGates regroup ONNX's i,o,f,c and z,r,h blocks per direction", () => {
  const r = rng(707);
  for (
    const [op, names] of [["lstm", ["input", "output", "forget", "cell"]], ["gru", [
      "update",
      "reset",
      "hidden",
    ]]] as const
  ) {
    const g = names.length, dirs = 2;
    const W = randomArray(dirs * g * H * E, r),
      R = randomArray(dirs * g * H * H, r),
      B = randomArray(dirs * 2 * g * H, r);
    const node = { W, R, B, hiddenSize: H, directions: 2 as const };
    const conv = op === "lstm" ? onnxLstmGates([node]) : onnxGruGates([node]);
    assert.deepEqual([conv.op, conv.directions, conv.inputSizes, conv.layers.length], [
      op,
      2,
      [E],
      2,
    ]);
    for (let d = 0; d < dirs; d++) {
      names.forEach((gate, k) => {
        const gw = (conv.layers[d] as Record<
          string,
          { W: Float32Array; R: Float32Array; bW: Float32Array; bR: Float32Array }
        >)[gate];
        const wAt = (d * g + k) * H;
        assert.deepEqual(gw.W, W.slice(wAt * E, (wAt + H) * E), `${op} ${gate} W dir ${d}`);
        assert.deepEqual(gw.R, R.slice(wAt * H, (wAt + H) * H), `${op} ${gate} R dir ${d}`);
        assert.deepEqual(gw.bW, B.slice(d * 2 * g * H + k * H, d * 2 * g * H + (k + 1) * H));
        assert.deepEqual(
          gw.bR,
          B.slice(d * 2 * g * H + (g + k) * H, d * 2 * g * H + (g + k + 1) * H),
        );
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Errors

Deno.test("converters and applyGates refuse wrong shapes and mismatched layers with a KilnError", () => {
  const r = rng(808);
  const code = (fn: () => unknown, c: string, re: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof KilnError && e.code === c && re.test(e.message));
  const cell = { kernel: rand(r, E + H, 4 * H), bias: rand(r, 4 * H) };
  code(
    () => tfLstmCellGates([cell], {} as { forgetBias: number }),
    "INVALID_ARGUMENT",
    /forgetBias/,
  );
  code(
    () => tfLstmCellGates([{ ...cell, bias: rand(r, 3 * H) }], { forgetBias: 1 }),
    "INVALID_ARGUMENT",
    /bias: has 9 values; 12 expected/,
  );
  code(
    () => tfLstmCellGates([{ kernel: rand(r, E + H, 4 * H + 1) }], { forgetBias: 1 }),
    "INVALID_ARGUMENT",
    /not 4 gate blocks/,
  );
  code(
    () => tfLstmCellGates([cell, cell], { forgetBias: 1 }),
    "INVALID_ARGUMENT",
    /layer 1: input size 4; 3 expected/,
  );
  const bad: TensorLike = { dims: [2, 2], values: [1, 2, 3] };
  code(
    () => tfLstmCellGates([{ kernel: bad }], { forgetBias: 1 }),
    "INVALID_ARGUMENT",
    /3 values for dims \[2, 2\]/,
  );
  code(() => torchLstmGates({}), "INVALID_ARGUMENT", /no "weight_ih_l0"/);
  const net = new Network();
  const rnn = net.addRNNv2([net.input("x", [N, T, E])], { op: "gru", hiddenSize: H });
  code(
    () => applyGates(rnn, tfLstmCellGates([cell], { forgetBias: 1 })),
    "INVALID_ARGUMENT",
    /is gru, hidden 3, 1 direction\(s\), 1 layer\(s\); the converted weights are lstm/,
  );
});
