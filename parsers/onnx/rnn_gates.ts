/**
 * ONNX LSTM / GRU / RNN weights → RNNv2 per-gate weights (dsl/layers/rnn_v2.ts).
 *
 * ONNX packs every gate of a direction into one tensor (operators LSTM, GRU, RNN, opset 7+):
 *   W [dirs, G·H, I]  the input matrices of the G gates, stacked
 *   R [dirs, G·H, H]  the recurrent matrices
 *   B [dirs, 2·G·H]   the G input biases (Wb) then the G recurrent biases (Rb); absent = zero
 * with the gates in ONNX's order: LSTM i, o, f, c; GRU z, r, h; RNN one gate. RNNv2 keeps one
 * [H, in] W, one [H, H] R and biases bW, bR of [H] per gate, with TensorRT's gate names:
 *   LSTM i→input, o→output, f→forget, c→cell; GRU z→update, r→reset, h→hidden; RNN →input.
 * Each gate block is row-major [H, in], as RNNv2 wants, so the conversion is a slicing.
 * Direction d of the node becomes pseudo-layer layer·dirs + d (forward 0, backward 1).
 *
 * What the weights alone cannot say, and an importer must check on the node:
 *  - GRU: RNNv2 computes linear_before_reset=1 (TensorRT's and cuDNN's GRU); a node with
 *    linear_before_reset=0 (ONNX's default) computes r ⊙ h before Rh and is not the same
 *    function. The weights map the same way under both conventions.
 *  - LSTM peepholes (input P), `clip`, `input_forget`, non-default `activations` and the
 *    direction "reverse" (backward only) have no RNNv2 equivalent.
 *  - layout=0 puts X in [T, B, I] while RNNv2 reads [N, T, E]: transpose the input.
 */
import { KilnError } from "../../errors.ts";
import { RNN_GATES, type RnnGate, type RnnGateWeights } from "../../dsl/layers/rnn_v2.ts";

/** The W, R and (optional) B inputs of one ONNX LSTM, GRU or RNN node. */
export interface OnnxRnnWeights {
  /** [dirs, G·H, I], row-major. */
  W: Float32Array;
  /** [dirs, G·H, H], row-major. */
  R: Float32Array;
  /** [dirs, 2·G·H]; zero when absent. */
  B?: Float32Array;
  /** The node's hidden_size attribute. */
  hiddenSize: number;
  /** 2 for direction "bidirectional", else 1. */
  directions: 1 | 2;
}

export interface OnnxGateOptions {
  /** Which stacked RNNv2 layer these weights fill (pseudo-layer = layer·dirs + dir); 0 default. */
  layer?: number;
  /** The node's name, for error messages. */
  node?: string;
}

/** ONNX gate order → RNNv2 gate names. */
const ONNX_GATE_ORDER: Record<"lstm" | "gru" | "rnn", readonly RnnGate[]> = {
  lstm: ["input", "output", "forget", "cell"],
  gru: ["update", "reset", "hidden"],
  rnn: ["input"],
};

/** ONNX LSTM (gates i, o, f, c) → RNNv2 lstm gates. Peepholes are not representable. */
export function onnxLstmToGates(
  w: OnnxRnnWeights,
  options: OnnxGateOptions = {},
): RnnGateWeights[] {
  return toGates("lstm", w, options);
}

/** ONNX GRU (gates z, r, h) → RNNv2 gru gates; RNNv2 computes linear_before_reset=1 only. */
export function onnxGruToGates(w: OnnxRnnWeights, options: OnnxGateOptions = {}): RnnGateWeights[] {
  return toGates("gru", w, options);
}

/** ONNX RNN (one gate) → RNNv2 rnn_tanh / rnn_relu gate "input". */
export function onnxRnnToGates(w: OnnxRnnWeights, options: OnnxGateOptions = {}): RnnGateWeights[] {
  return toGates("rnn", w, options);
}

function toGates(
  op: "lstm" | "gru" | "rnn",
  w: OnnxRnnWeights,
  options: OnnxGateOptions,
): RnnGateWeights[] {
  const order = ONNX_GATE_ORDER[op];
  // The mapping must name every gate RNNv2 has for the op, once.
  const kilnOp = op === "rnn" ? "rnn_tanh" : op;
  if (order.length !== RNN_GATES[kilnOp].length) {
    throw new KilnError("INTERNAL", `ONNX ${op} gate mapping is out of date with RNNv2`);
  }
  const what = `ONNX ${op.toUpperCase()}${options.node ? ` node "${options.node}"` : ""}`;
  const h = w.hiddenSize, dirs = w.directions, g = order.length;
  const layer = options.layer ?? 0;
  if (!(Number.isInteger(h) && h > 0)) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `${what}: hidden_size must be a positive integer, got ${h}`,
    );
  }
  if (dirs !== 1 && dirs !== 2) {
    throw new KilnError("INVALID_ARGUMENT", `${what}: directions must be 1 or 2, got ${dirs}`);
  }
  if (!(Number.isInteger(layer) && layer >= 0)) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `${what}: layer must be a non-negative integer, got ${layer}`,
    );
  }
  const rows = dirs * g * h;
  const inputSize = w.W.length / rows;
  if (!Number.isInteger(inputSize) || inputSize === 0) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `${what}: W has ${w.W.length} values, not a multiple of dirs·${g}·hidden_size = ${rows} ([${dirs}, ${
        g * h
      }, input_size] expected)`,
    );
  }
  if (w.R.length !== rows * h) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `${what}: R has ${w.R.length} values; [${dirs}, ${g * h}, ${h}] = ${rows * h} expected`,
    );
  }
  if (w.B && w.B.length !== 2 * rows) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `${what}: B has ${w.B.length} values; [${dirs}, ${2 * g * h}] = ${2 * rows} expected`,
    );
  }
  const out: RnnGateWeights[] = [];
  for (let d = 0; d < dirs; d++) {
    order.forEach((gate, k) => {
      const wAt = (d * g + k) * h * inputSize;
      const rAt = (d * g + k) * h * h;
      const bAt = d * 2 * g * h + k * h;
      out.push({
        layerIndex: layer * dirs + d,
        gate,
        W: w.W.slice(wAt, wAt + h * inputSize),
        R: w.R.slice(rAt, rAt + h * h),
        bW: w.B ? w.B.slice(bAt, bAt + h) : new Float32Array(h),
        bR: w.B ? w.B.slice(bAt + g * h, bAt + g * h + h) : new Float32Array(h),
      });
    });
  }
  return out;
}
