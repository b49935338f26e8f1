/**
 * Gate-layout converters: LSTM and GRU weights as TensorFlow, Keras, PyTorch and ONNX store
 * them → RNNv2's per-gate weights (dsl/layers/rnn_v2.ts, TensorRT's gate names: LSTM input,
 * output, forget, cell; GRU update, reset, hidden). Per gate, RNNv2 wants W [H, in] and
 * R [H, H] row-major (gate pre-activation = W x + bW + R h + bR) and biases bW, bR [H].
 *
 * Every converter returns a plain structure, `{ op, hiddenSize, directions, inputSizes,
 * layers: [{ <gate>: { W, R, bW, bR } }] }` with one entry per pseudo-layer l·dirs + dir (as
 * TensorRT indexes them), that `applyGates(rnnLayer, converted)` sets on an RNNv2 layer (or
 * `gateList(converted)` turns into the `rnn` shortcut's `gates`). A stacked layer is given as
 * one cell (unidirectional) or `{ forward, backward }` (bidirectional: layer l > 0 then reads
 * the two directions' outputs side by side, 2·H wide, as RNNv2 does).
 *
 * What weights cannot say and each converter's caller must know: the activations must be the
 * standard ones (sigmoid gates, tanh cell/candidate; tfjs' and Keras 1's default
 * `recurrentActivation` is hard_sigmoid, which RNNv2 does not compute), and LSTM peepholes,
 * projections (TF `num_proj`, PyTorch `proj_size`) and cell clipping have no RNNv2 equivalent.
 */
import { KilnError } from "../../errors.ts";
import type { RnnGate, RnnGateWeights, RNNv2Layer } from "../../dsl/layers/rnn_v2.ts";
import { onnxGruToGates, onnxLstmToGates, type OnnxRnnWeights } from "../onnx/rnn_gates.ts";

/** A tensor as the converters take it (a checkpoint's `float32(name)` fits). */
export interface TensorLike {
  dims: readonly number[];
  values: ArrayLike<number>;
}

/** One gate's weights in RNNv2's layout. */
export interface GateWeights {
  /** [H, inputSize] row-major. */
  W: Float32Array;
  /** [H, H] row-major. */
  R: Float32Array;
  bW: Float32Array;
  bR: Float32Array;
}

export type LstmGate = "input" | "output" | "forget" | "cell";
export type GruGate = "update" | "reset" | "hidden";

interface Converted<G extends string> {
  op: "lstm" | "gru";
  hiddenSize: number;
  directions: 1 | 2;
  /** Input width of each stacked layer: E, then directions·H. */
  inputSizes: number[];
  /** Per pseudo-layer l·directions + dir, each gate's weights. */
  layers: Record<G, GateWeights>[];
}

export interface ConvertedLstm extends Converted<LstmGate> {
  op: "lstm";
}

export interface ConvertedGru extends Converted<GruGate> {
  op: "gru";
}

/** What every converter returns: per pseudo-layer, per gate, RNNv2's W, R, bW, bR. */
export type ConvertedRnn = ConvertedLstm | ConvertedGru;

/** A stacked layer: one cell, or a forward and a backward one. */
export type LayerCells<C> = C | { forward: C; backward: C };

// ---------------------------------------------------------------------------------------------
// TensorFlow (tf.nn.rnn_cell / tf.compat.v1) and Keras

/** One `BasicLSTMCell` / `LSTMCell`: `…/kernel` [I + H, 4H] and `…/bias` [4H]. */
export interface TfLstmCell {
  kernel: TensorLike;
  bias?: TensorLike;
}

/**
 * TensorFlow `BasicLSTMCell` and `LSTMCell` (no peepholes, no projection), as in a
 * `MultiRNNCell`. Source layout: kernel [I + H, 4H], applied as [x, h] · kernel, so rows 0..I−1
 * multiply x and rows I..I+H−1 multiply h; its columns are four blocks of H, gates i, j, f, o
 * (j is the cell candidate); bias [4H]. TF computes c' = σ(f + forget_bias) ⊙ c + σ(i) ⊙ tanh(j),
 * h' = σ(o) ⊙ tanh(c'). `forgetBias` is therefore added to the forget gate's bW. It is not
 * stored in checkpoints, and both cells default to 1.0, so the caller states the value the model
 * was built with. TF's single bias becomes bW; bR is zero.
 */
export function tfLstmCellGates(
  cells: readonly LayerCells<TfLstmCell>[],
  options: { forgetBias: number },
): ConvertedLstm {
  if (!Number.isFinite(options?.forgetBias)) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      "TF LSTM cells: options.forgetBias must be a number (BasicLSTMCell's and LSTMCell's " +
        "default is 1.0; the value is not stored in the checkpoint)",
    );
  }
  return assemble("lstm", cells, (cell, what) => {
    const [rows, cols] = dimsOf(cell.kernel, `${what} kernel`, 2);
    const h = blockWidth(cols, 4, `${what} kernel`);
    const inputSize = rows - h;
    if (inputSize <= 0) bad(`${what} kernel`, `[${rows}, ${cols}] has no rows for the input`);
    const bias = optionalVector(cell.bias, 4 * h, `${what} bias`);
    // Column blocks i, j, f, o; j is the cell candidate.
    const order = { input: 0, cell: 1, forget: 2, output: 3 } as const;
    const gates = fromColumns(cell.kernel.values, cols, 0, inputSize, h, order);
    for (const gate of Object.keys(order) as LstmGate[]) {
      const k = order[gate], bW = gates[gate].bW;
      if (bias) bW.set(bias.subarray(k * h, k * h + h));
      if (gate === "forget") bW.forEach((v, j) => (bW[j] = v + options.forgetBias));
    }
    return { gates, hiddenSize: h, inputSize };
  }) as ConvertedLstm;
}

/** One Keras `LSTM` layer: kernel [I, 4H], recurrent_kernel [H, 4H], bias [4H]. */
export interface KerasRnnLayer {
  kernel: TensorLike;
  recurrentKernel: TensorLike;
  bias?: TensorLike;
}

/**
 * Keras `LSTM` (tf.keras and tfjs `tf.layers.lstm`). Source layout: x · kernel [I, 4H] plus
 * h · recurrent_kernel [H, 4H], columns in four blocks of H, gates i, f, c, o; bias [4H] (with
 * `unit_forget_bias` already folded in at initialisation). The bias becomes bW; bR is zero.
 * Only `activation: tanh` with `recurrent_activation: sigmoid` matches RNNv2.
 */
export function kerasLstmGates(
  layers: readonly LayerCells<KerasRnnLayer>[],
): ConvertedLstm {
  return assemble("lstm", layers, (layer, what) => {
    const { h, inputSize } = kerasShapes(layer, 4, what);
    const bias = optionalVector(layer.bias, 4 * h, `${what} bias`);
    const order = { input: 0, forget: 1, cell: 2, output: 3 } as const;
    const gates = fromColumns(layer.kernel.values, 4 * h, 0, inputSize, h, order);
    const rec = fromColumns(layer.recurrentKernel.values, 4 * h, 0, h, h, order);
    for (const gate of Object.keys(order) as LstmGate[]) {
      gates[gate].R = rec[gate].W;
      if (bias) gates[gate].bW.set(bias.subarray(order[gate] * h, order[gate] * h + h));
    }
    return { gates, hiddenSize: h, inputSize };
  }) as ConvertedLstm;
}

/**
 * Keras `GRU` (tf.keras; gates z, r, h in column blocks of kernel [I, 3H] and recurrent_kernel
 * [H, 3H]). With `reset_after=True` (tf.keras 2's default) the bias is [2, 3H]: row 0 the input
 * biases, row 1 the recurrent ones, and the candidate is tanh(x Wh + bWh + r ⊙ (h Rh + bRh)): the
 * linear-before-reset GRU of RNNv2, converted exactly (z→update, r→reset, h→hidden).
 * With `reset_after=False` (bias [3H]; Keras 1's and tfjs' GRU) the candidate is
 * tanh(x Wh + (r ⊙ h) Rh + bh), which RNNv2 computes only when Rh is diagonal; see
 * `tfGruCellGates`. With no bias, say which with `options.resetAfter`.
 */
export function kerasGruGates(
  layers: readonly LayerCells<KerasRnnLayer>[],
  options: { resetAfter?: boolean } = {},
): ConvertedGru {
  return assemble("gru", layers, (layer, what) => {
    const { h, inputSize } = kerasShapes(layer, 3, what);
    let resetAfter = options.resetAfter;
    if (layer.bias) {
      const d = layer.bias.dims;
      const after = d.length === 2 && d[0] === 2 && d[1] === 3 * h;
      const before = d.length === 1 && d[0] === 3 * h;
      if (!after && !before) {
        bad(`${what} bias`, `dims [${d.join(", ")}]; [2, ${3 * h}] or [${3 * h}] expected`);
      }
      if (resetAfter !== undefined && resetAfter !== after) {
        bad(`${what} bias`, `dims [${d.join(", ")}] contradict options.resetAfter=${resetAfter}`);
      }
      resetAfter = after;
    }
    if (resetAfter === undefined) {
      bad(what, "has no bias, so options.resetAfter must say which GRU it is");
    }
    const order = { update: 0, reset: 1, hidden: 2 } as const;
    const gates = fromColumns(layer.kernel.values, 3 * h, 0, inputSize, h, order);
    const rec = fromColumns(layer.recurrentKernel.values, 3 * h, 0, h, h, order);
    const b = layer.bias ? Float32Array.from(layer.bias.values) : undefined;
    for (const gate of Object.keys(order) as GruGate[]) {
      const k = order[gate];
      gates[gate].R = rec[gate].W;
      if (b) gates[gate].bW.set(b.subarray(k * h, k * h + h));
      if (b && resetAfter) gates[gate].bR.set(b.subarray(3 * h + k * h, 3 * h + k * h + h));
    }
    if (!resetAfter) requireDiagonal(gates.hidden.R, h, `${what} (Keras GRU, reset_after=False)`);
    return { gates, hiddenSize: h, inputSize };
  }) as ConvertedGru;
}

/** One TensorFlow `GRUCell`: `gates/kernel` [I + H, 2H], `candidate/kernel` [I + H, H]. */
export interface TfGruCell {
  gatesKernel: TensorLike;
  gatesBias?: TensorLike;
  candidateKernel: TensorLike;
  candidateBias?: TensorLike;
}

/**
 * TensorFlow `GRUCell`. Source layout: [x, h] · gates/kernel [I + H, 2H] + gates/bias gives
 * r then u (two column blocks of H); the candidate is c = tanh([x, r ⊙ h] · candidate/kernel
 * [I + H, H] + candidate/bias) and h' = u ⊙ h + (1 − u) ⊙ c, so u is RNNv2's update gate.
 *
 * This GRU resets h before the recurrent matrix, (r ⊙ h) · Rc. RNNv2 (TensorRT, cuDNN) resets
 * after it, r ⊙ (h · Rc). The two agree for all inputs exactly when Rc (the candidate kernel's
 * rows I..I+H−1) is diagonal, since then (r ⊙ h) · diag(d) = r ⊙ (h · diag(d)). The converter
 * converts such cells exactly and refuses any other with an UNSUPPORTED error: no RNNv2 weights
 * reproduce it. (The other direction, an RNNv2 GRU written as a GRUCell, has the same limit.)
 */
export function tfGruCellGates(cells: readonly LayerCells<TfGruCell>[]): ConvertedGru {
  return assemble("gru", cells, (cell, what) => {
    const [rows, cols] = dimsOf(cell.gatesKernel, `${what} gates/kernel`, 2);
    const h = blockWidth(cols, 2, `${what} gates/kernel`);
    const inputSize = rows - h;
    if (inputSize <= 0) bad(`${what} gates/kernel`, `[${rows}, ${cols}] has no input rows`);
    const [cr, cc] = dimsOf(cell.candidateKernel, `${what} candidate/kernel`, 2);
    if (cr !== rows || cc !== h) {
      bad(`${what} candidate/kernel`, `dims [${cr}, ${cc}]; [${rows}, ${h}] expected`);
    }
    const gb = optionalVector(cell.gatesBias, 2 * h, `${what} gates/bias`);
    const cb = optionalVector(cell.candidateBias, h, `${what} candidate/bias`);
    const rz = fromColumns(cell.gatesKernel.values, 2 * h, 0, inputSize, h, {
      reset: 0,
      update: 1,
    });
    const cand = fromColumns(cell.candidateKernel.values, h, 0, inputSize, h, { hidden: 0 });
    const gates = { ...rz, ...cand };
    if (gb) {
      gates.reset.bW.set(gb.subarray(0, h));
      gates.update.bW.set(gb.subarray(h, 2 * h));
    }
    if (cb) gates.hidden.bW.set(cb);
    requireDiagonal(gates.hidden.R, h, `${what} (TF GRUCell)`);
    return { gates, hiddenSize: h, inputSize };
  }) as ConvertedGru;
}

// ---------------------------------------------------------------------------------------------
// PyTorch

/** A PyTorch state dict (or a checkpoint): tensors by name. */
export type StateDict =
  | ReadonlyMap<string, TensorLike>
  | Readonly<Record<string, TensorLike>>;

export interface TorchOptions {
  /** Key prefix, e.g. "rnn." for a module's `rnn` submodule (default ""). */
  prefix?: string;
}

/**
 * PyTorch `nn.LSTM`. Source layout, per layer k (suffix `_reverse` for the backward direction):
 * weight_ih_l{k} [4H, I], weight_hh_l{k} [4H, H], bias_ih_l{k} and bias_hh_l{k} [4H] (absent
 * with bias=False), each in four row blocks of H, gates i, f, g, o (g is the cell candidate).
 * Rows are already [H, in], so each gate is a slice: i→input, f→forget, g→cell, o→output,
 * bias_ih → bW, bias_hh → bR. Layers and directions are found from the keys; `proj_size`
 * (weight_hr_l{k}) is refused.
 */
export function torchLstmGates(
  state: StateDict,
  options: TorchOptions = {},
): ConvertedLstm {
  return torchGates("lstm", state, options, {
    input: 0,
    forget: 1,
    cell: 2,
    output: 3,
  }) as ConvertedLstm;
}

/**
 * PyTorch `nn.GRU`. Source layout as `nn.LSTM` with three row blocks, gates r, z, n, and
 * n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h: the
 * linear-before-reset GRU of RNNv2, converted exactly (r→reset, z→update, n→hidden).
 */
export function torchGruGates(state: StateDict, options: TorchOptions = {}): ConvertedGru {
  return torchGates("gru", state, options, { reset: 0, update: 1, hidden: 2 }) as ConvertedGru;
}

function torchGates<G extends LstmGate | GruGate>(
  op: "lstm" | "gru",
  state: StateDict,
  options: TorchOptions,
  order: Record<G, number>,
): Converted<G> {
  const prefix = options.prefix ?? "";
  const get = (k: string): TensorLike | undefined =>
    state instanceof Map
      ? state.get(k)
      : Object.hasOwn(state, k)
      ? (state as Record<string, TensorLike>)[k]
      : undefined;
  const what = `PyTorch nn.${op.toUpperCase()}`;
  let numLayers = 0;
  while (get(`${prefix}weight_ih_l${numLayers}`)) numLayers++;
  if (numLayers === 0) bad(what, `has no "${prefix}weight_ih_l0"`);
  const bidirectional = get(`${prefix}weight_ih_l0_reverse`) !== undefined;
  const g = Object.keys(order).length;
  const cell = (k: number, sfx: string) => {
    const key = (n: string) => `${prefix}${n}_l${k}${sfx}`;
    if (get(key("weight_hr"))) {
      throw new KilnError(
        "UNSUPPORTED",
        `${what}: "${key("weight_hr")}": proj_size has no RNNv2 equivalent`,
      );
    }
    const wih = get(key("weight_ih")), whh = get(key("weight_hh"));
    if (!wih || !whh) bad(what, `"${key(wih ? "weight_hh" : "weight_ih")}" is missing`);
    return { wih: wih!, whh: whh!, bih: get(key("bias_ih")), bhh: get(key("bias_hh")), key };
  };
  const layers = Array.from(
    { length: numLayers },
    (_, k) => bidirectional ? { forward: cell(k, ""), backward: cell(k, "_reverse") } : cell(k, ""),
  );
  return assemble(op, layers, (c) => {
    const [rows, inputSize] = dimsOf(c.wih, `"${c.key("weight_ih")}"`, 2);
    const h = blockWidth(rows, g, `"${c.key("weight_ih")}"`);
    const [hr, hc] = dimsOf(c.whh, `"${c.key("weight_hh")}"`, 2);
    if (hr !== g * h || hc !== h) {
      bad(`"${c.key("weight_hh")}"`, `dims [${hr}, ${hc}]; [${g * h}, ${h}] expected`);
    }
    const bih = optionalVector(c.bih, g * h, `"${c.key("bias_ih")}"`);
    const bhh = optionalVector(c.bhh, g * h, `"${c.key("bias_hh")}"`);
    const gates = {} as Record<G, GateWeights>;
    for (const gate of Object.keys(order) as G[]) {
      const k = order[gate];
      gates[gate] = {
        W: Float32Array.from(slice(c.wih.values, k * h * inputSize, (k + 1) * h * inputSize)),
        R: Float32Array.from(slice(c.whh.values, k * h * h, (k + 1) * h * h)),
        bW: bih ? bih.slice(k * h, k * h + h) : new Float32Array(h),
        bR: bhh ? bhh.slice(k * h, k * h + h) : new Float32Array(h),
      };
    }
    return { gates, hiddenSize: h, inputSize };
  }, what);
}

// ---------------------------------------------------------------------------------------------
// ONNX (the slicing itself lives in parsers/onnx/rnn_gates.ts)

/**
 * ONNX `LSTM` nodes, one per stacked layer: W [dirs, 4H, I], R [dirs, 4H, H], B [dirs, 8H]
 * (Wb then Rb), gates i, o, f, c. Converted by parsers/onnx/rnn_gates.ts, regrouped here.
 */
export function onnxLstmGates(nodes: readonly OnnxRnnWeights[]): ConvertedLstm {
  return fromOnnx<LstmGate>("lstm", nodes, onnxLstmToGates) as ConvertedLstm;
}

/**
 * ONNX `GRU` nodes, one per stacked layer: W [dirs, 3H, I], R [dirs, 3H, H], B [dirs, 6H], gates
 * z, r, h. Exact for `linear_before_reset=1` only (ONNX's default 0 is the other GRU): the caller
 * checks the node's attribute.
 */
export function onnxGruGates(nodes: readonly OnnxRnnWeights[]): ConvertedGru {
  return fromOnnx<GruGate>("gru", nodes, onnxGruToGates) as ConvertedGru;
}

function fromOnnx<G extends LstmGate | GruGate>(
  op: "lstm" | "gru",
  nodes: readonly OnnxRnnWeights[],
  convert: (w: OnnxRnnWeights, o: { layer: number }) => RnnGateWeights[],
): Converted<G> {
  const layers = nodes.map((node) => {
    const byDir: Record<string, GateWeights>[] = [{}, {}];
    for (const g of convert(node, { layer: 0 })) {
      byDir[g.layerIndex][g.gate] = {
        W: g.W as Float32Array,
        R: g.R as Float32Array,
        bW: g.bW as Float32Array,
        bR: g.bR as Float32Array,
      };
    }
    const inputSize = node.W.length / (node.directions * (op === "lstm" ? 4 : 3) * node.hiddenSize);
    const cell = (d: number) => ({
      gates: byDir[d] as Record<G, GateWeights>,
      hiddenSize: node.hiddenSize,
      inputSize,
    });
    return node.directions === 2 ? { forward: cell(0), backward: cell(1) } : cell(0);
  });
  return assemble(op, layers, (c) => c, `ONNX ${op.toUpperCase()}`);
}

// ---------------------------------------------------------------------------------------------
// Applying converted weights

/** The converted weights as RNNv2 `setGates` / `rnn({gates})` entries. */
export function gateList(converted: ConvertedRnn): RnnGateWeights[] {
  return converted.layers.flatMap((gates, layerIndex) =>
    Object.entries(gates as Record<string, GateWeights>).map(([gate, g]) => ({
      layerIndex,
      gate: gate as RnnGate,
      ...g,
    }))
  );
}

/**
 * Sets converted weights on an RNNv2 layer with `setWeightsForGate` / `setBiasForGate`, after
 * checking that the layer's op, hidden size, direction count and layer count match.
 */
export function applyGates(layer: RNNv2Layer, converted: ConvertedRnn): RNNv2Layer {
  const a = layer.rnnAttrs;
  const dirs = a.direction === "bidirectional" ? 2 : 1;
  const want =
    `${converted.op}, hidden ${converted.hiddenSize}, ${converted.directions} direction(s), ` +
    `${converted.layers.length / converted.directions} layer(s)`;
  const have = `${a.op}, hidden ${a.hiddenSize}, ${dirs} direction(s), ${a.layers} layer(s)`;
  if (
    a.op !== converted.op || a.hiddenSize !== converted.hiddenSize ||
    dirs !== converted.directions ||
    a.layers * dirs !== converted.layers.length
  ) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `RNNv2 layer "${layer.name}" is ${have}; the converted weights are ${want}`,
      { layer: layer.name },
    );
  }
  converted.layers.forEach((gates, li) => {
    for (const [gate, g] of Object.entries(gates as Record<string, GateWeights>)) {
      const name = gate as RnnGate;
      layer.setWeightsForGate(li, name, true, g.W);
      layer.setWeightsForGate(li, name, false, g.R);
      layer.setBiasForGate(li, name, true, g.bW);
      layer.setBiasForGate(li, name, false, g.bR);
    }
  });
  return layer;
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

interface ConvertedCell<G extends string> {
  gates: Record<G, GateWeights>;
  hiddenSize: number;
  inputSize: number;
}

/** Converts each cell and checks that sizes chain: one H, layer l > 0 reading dirs·H. */
function assemble<C, G extends LstmGate | GruGate>(
  op: "lstm" | "gru",
  layers: readonly LayerCells<C>[],
  convert: (cell: C, what: string) => ConvertedCell<G>,
  source = op === "lstm" ? "LSTM" : "GRU",
): Converted<G> {
  if (!Array.isArray(layers) || layers.length === 0) bad(source, "no layers given");
  const isPair = (x: LayerCells<C>): x is { forward: C; backward: C } =>
    typeof x === "object" && x !== null && "forward" in x && "backward" in x;
  const directions: 1 | 2 = isPair(layers[0]) ? 2 : 1;
  const out: Converted<G> = { op, hiddenSize: 0, directions, inputSizes: [], layers: [] };
  layers.forEach((layer, l) => {
    if (isPair(layer) !== (directions === 2)) {
      bad(`${source} layer ${l}`, "mixes one-direction and two-direction layers");
    }
    const cells = isPair(layer) ? [layer.forward, layer.backward] : [layer as C];
    cells.forEach((cell, d) => {
      const what = `${source} layer ${l}${directions === 2 ? (d ? " backward" : " forward") : ""}`;
      const c = convert(cell, what);
      if (out.hiddenSize === 0) out.hiddenSize = c.hiddenSize;
      if (c.hiddenSize !== out.hiddenSize) {
        bad(what, `hidden size ${c.hiddenSize} differs from layer 0's ${out.hiddenSize}`);
      }
      const expected = l === 0
        ? (d === 0 ? c.inputSize : out.inputSizes[0])
        : directions * out.hiddenSize;
      if (c.inputSize !== expected) {
        bad(
          what,
          `input size ${c.inputSize}; ${expected} expected (layer l > 0 reads ${directions}·H)`,
        );
      }
      if (d === 0) out.inputSizes.push(c.inputSize);
      out.layers.push(c.gates);
    });
  });
  return out;
}

/**
 * Splits the column blocks of a row-major [rows, cols] matrix into per-gate W [H, inSize]:
 * gate k's W[j][i] = m[(rowStart + i)·cols + k·H + j] for i < inSize. When rows follow for h
 * (TF's [x, h] kernels), those become R.
 */
function fromColumns<G extends string>(
  m: ArrayLike<number>,
  cols: number,
  rowStart: number,
  inSize: number,
  h: number,
  order: Record<G, number>,
): Record<G, GateWeights> {
  const out = {} as Record<G, GateWeights>;
  const rowsAvailable = m.length / cols - rowStart;
  const hasR = rowsAvailable >= inSize + h;
  for (const gate of Object.keys(order) as G[]) {
    const k = order[gate];
    const W = new Float32Array(h * inSize), R = new Float32Array(h * h);
    for (let j = 0; j < h; j++) {
      for (let i = 0; i < inSize; i++) W[j * inSize + i] = m[(rowStart + i) * cols + k * h + j];
      if (hasR) {
        for (let i = 0; i < h; i++) R[j * h + i] = m[(rowStart + inSize + i) * cols + k * h + j];
      }
    }
    out[gate] = { W, R, bW: new Float32Array(h), bR: new Float32Array(h) };
  }
  return out;
}

function kerasShapes(layer: KerasRnnLayer, g: number, what: string) {
  const [inputSize, cols] = dimsOf(layer.kernel, `${what} kernel`, 2);
  const h = blockWidth(cols, g, `${what} kernel`);
  const [rr, rc] = dimsOf(layer.recurrentKernel, `${what} recurrent_kernel`, 2);
  if (rr !== h || rc !== g * h) {
    bad(`${what} recurrent_kernel`, `dims [${rr}, ${rc}]; [${h}, ${g * h}] expected`);
  }
  return { h, inputSize };
}

/** Refuses a non-reset-after GRU whose candidate recurrent matrix is not diagonal. */
function requireDiagonal(r: Float32Array, h: number, what: string): void {
  let worst = 0, at = -1;
  for (let j = 0; j < h; j++) {
    for (let i = 0; i < h; i++) {
      if (i !== j && Math.abs(r[j * h + i]) > worst) {
        [worst, at] = [Math.abs(r[j * h + i]), j * h + i];
      }
    }
  }
  if (at >= 0) {
    throw new KilnError(
      "UNSUPPORTED",
      `${what}: this GRU applies the reset gate before the candidate's recurrent matrix, ` +
        `(r ⊙ h)·R; RNNv2 (TensorRT, cuDNN) applies it after, r ⊙ (h·R). They agree only when ` +
        `that matrix is diagonal, and this one is not (|R[${Math.floor(at / h)}][${at % h}]| = ` +
        `${worst}). No RNNv2 weights compute this GRU.`,
    );
  }
}

function dimsOf(t: TensorLike | undefined, what: string, rank: number): number[] {
  if (!t || !Array.isArray(t.dims) || t.values === undefined) bad(what, "is missing");
  const d = t!.dims;
  if (d.length !== rank) bad(what, `has dims [${d.join(", ")}]; rank ${rank} expected`);
  const count = d.reduce((a, b) => a * b, 1);
  if (t!.values.length !== count) {
    bad(what, `has ${t!.values.length} values for dims [${d.join(", ")}] (${count})`);
  }
  return [...d];
}

function optionalVector(
  t: TensorLike | undefined,
  n: number,
  what: string,
): Float32Array | undefined {
  if (t === undefined) return undefined;
  const [len] = dimsOf(t, what, 1);
  if (len !== n) bad(what, `has ${len} values; ${n} expected`);
  return Float32Array.from(t.values);
}

function blockWidth(cols: number, g: number, what: string): number {
  if (cols === 0 || cols % g !== 0) bad(what, `has ${cols} columns, not ${g} gate blocks`);
  return cols / g;
}

function slice(a: ArrayLike<number>, from: number, to: number): ArrayLike<number> {
  return ArrayBuffer.isView(a)
    ? (a as unknown as Float32Array).subarray(from, to)
    : Array.prototype.slice.call(a, from, to);
}

function bad(what: string, problem: string): never {
  throw new KilnError("INVALID_ARGUMENT", `${what}: ${problem}`);
}
