/**
 * ONNX LSTM, GRU and RNN as one RNNv2 layer (dsl/layers/rnn_v2.ts), their packed W, R, B turned
 * into per-gate weights by rnn_gates.ts. ONNX lays X out as [T, B, I] (layout 0) or [B, T, I]
 * (layout 1, opset 14+); RNNv2 reads [B, T, I], so layout 0 is transposed in and out. A
 * "reverse" node runs forward over the sequence reversed (without sequence lengths). What
 * RNNv2 cannot compute (GRU linear_before_reset=0, LSTM peepholes) is unrolled into plain
 * layers by _rnn_unrolled.ts.
 */
import { formatDims, N } from "../../dsl/ir/dims.ts";
import type { Tensor } from "../../dsl/ir/graph.ts";
import type { RnnGateWeights, RnnOperation, RNNv2Layer } from "../../dsl/layers/rnn_v2.ts";
import { ConstTensor } from "./_const.ts";
import { floatTensor } from "./_ops_math.ts";
import {
  type AttrReader,
  type ImportContext,
  type OnnxValue,
  registerOp,
  reshape,
  transpose,
} from "./_registry.ts";
import {
  onnxGruToGates,
  onnxLstmToGates,
  onnxRnnToGates,
  type OnnxRnnWeights,
} from "./rnn_gates.ts";
import { unrollRnn } from "./_rnn_unrolled.ts";

type Kind = "LSTM" | "GRU" | "RNN";

/** The activations RNNv2 computes, per op (ONNX's defaults). */
const DEFAULT_ACTIVATIONS: Record<Kind, string[]> = {
  LSTM: ["Sigmoid", "Tanh", "Tanh"],
  GRU: ["Sigmoid", "Tanh"],
  RNN: ["Tanh"],
};

const GATE_COUNT: Record<Kind, number> = { LSTM: 4, GRU: 3, RNN: 1 };

function directions(attr: AttrReader): 1 | 2 {
  return attr.string("direction", "forward") === "bidirectional" ? 2 : 1;
}

function check(kind: Kind) {
  return (attr: AttrReader, opset: number): string[] => {
    const out: string[] = [];
    const dir = attr.string("direction", "forward");
    if (!["forward", "reverse", "bidirectional"].includes(dir)) out.push(`direction "${dir}"`);
    if (attr.has("clip")) out.push("clip (RNNv2 does not clip the cell input)");
    const acts = attr.strings("activations");
    if (acts) {
      const one = kind === "RNN" && acts.every((a) => a === "Relu")
        ? ["Relu"]
        : DEFAULT_ACTIVATIONS[kind];
      const want = Array.from({ length: directions(attr) }, () => one).flat();
      if (acts.length !== want.length || acts.some((a, i) => a !== want[i])) {
        out.push(
          `activations [${acts.join(", ")}] (RNNv2 computes ${
            DEFAULT_ACTIVATIONS[kind].join(", ")
          }${kind === "RNN" ? " or Relu" : ""})`,
        );
      }
    }
    if (!attr.has("hidden_size")) out.push('the "hidden_size" attribute is missing');
    if (kind === "LSTM" && attr.int("input_forget", 0) !== 0) out.push("input_forget=1");
    if (opset < 14 && attr.has("layout")) out.push("layout before opset 14");
    return out;
  };
}

function importRnn(kind: Kind) {
  return (ctx: ImportContext): OnnxValue[] => {
    const attr = ctx.attr;
    const layout = ctx.opset >= 14 ? attr.int("layout", 0) : 0;
    const hidden = attr.int("hidden_size", 0);
    const dirs = directions(attr);
    const reverse = attr.string("direction", "forward") === "reverse";
    let x = floatTensor(ctx, 0);
    if (x.dims.length !== 3) ctx.fail(`X ${formatDims(x.dims)} must have rank 3`, "SHAPE_MISMATCH");
    if (layout === 0) {
      if (x.dims[0] === N) {
        ctx.fail("X is [T, B, I] (layout 0) and T cannot be the symbolic batch N");
      }
      x = transpose(ctx, x, [1, 0, 2], "batchFirst");
    }
    const steps = x.dims[1] as number;
    // RNNv2 computes neither of these: the recurrence is unrolled into plain layers instead.
    const unroll = (kind === "GRU" && attr.int("linear_before_reset", 0) === 0) ||
      (kind === "LSTM" && ctx.has(7));
    const weights = (i: number, what: string) => {
      const c = ctx.constInput(i, what);
      if (!c.isFloat) ctx.fail(`${what} must be floating point`, "INVALID_ARGUMENT");
      return Float32Array.from(c.values);
    };
    const w: OnnxRnnWeights = {
      W: weights(1, "W"),
      R: weights(2, "R"),
      B: ctx.has(3) ? weights(3, "B") : undefined,
      hiddenSize: hidden,
      directions: dirs,
    };
    const wDims = ctx.dims(1);
    if (
      wDims.length !== 3 || wDims[0] !== dirs || wDims[1] !== GATE_COUNT[kind] * hidden ||
      wDims[2] !== x.dims[2]
    ) {
      ctx.fail(
        `W ${formatDims(wDims)} must be [${dirs}, ${GATE_COUNT[kind] * hidden}, ${
          x.dims[2]
        }] (directions, gates·hidden_size, input size)`,
        "SHAPE_MISMATCH",
      );
    }
    let gates: RnnGateWeights[];
    let op: RnnOperation;
    if (kind === "LSTM") (gates = onnxLstmToGates(w, { node: ctx.node.name })), (op = "lstm");
    else if (kind === "GRU") (gates = onnxGruToGates(w, { node: ctx.node.name })), (op = "gru");
    else {
      gates = onnxRnnToGates(w, { node: ctx.node.name });
      op = attr.strings("activations")?.[0] === "Relu" ? "rnn_relu" : "rnn_tanh";
    }

    const stateOf = (i: number, what: string): Tensor | undefined => {
      if (!ctx.has(i)) return undefined;
      const s = floatTensor(ctx, i);
      if (s.dims.length !== 3) {
        ctx.fail(`${what} ${formatDims(s.dims)} must have rank 3`, "SHAPE_MISMATCH");
      }
      return layout === 0 ? transpose(ctx, s, [1, 0, 2], `${what}BatchFirst`) : s;
    };
    const h0 = stateOf(5, "initial_h");
    const c0 = kind === "LSTM" ? stateOf(6, "initial_c") : undefined;
    let lengths: Tensor | undefined;
    if (ctx.has(4)) {
      const c = ctx.constant(4);
      // Lengths that are all T change nothing.
      if (!(c && c.values.every((v) => v === steps))) {
        lengths = ctx.tensor(4);
        if (lengths.dtype !== "int32") {
          ctx.fail(`sequence_lens is ${lengths.dtype}; int32 expected`);
        }
      }
    }
    // Y [B, T, dirs, H] → [T, dirs, B, H] for layout 0; states [B, dirs, H] → [dirs, B, H].
    const laidOut = (y: Tensor, states: Tensor[]): OnnxValue[] => [
      layout === 0 ? transpose(ctx, y, [1, 2, 0, 3], "Yt") : y,
      ...states.map((s, i) =>
        layout === 0 ? transpose(ctx, s, [1, 0, 2], i === 0 ? "Y_h" : "Y_c") : s
      ),
    ];
    if (unroll) {
      const P = ctx.has(7) ? weights(7, "P") : undefined;
      if (P && P.length !== dirs * 3 * hidden) {
        ctx.fail(`P has ${P.length} values; [${dirs}, ${3 * hidden}] expected`, "SHAPE_MISMATCH");
      }
      const [y, ...states] = unrollRnn(ctx, {
        kind: kind as "LSTM" | "GRU",
        x,
        hidden,
        dirs,
        reverse,
        W: w.W,
        R: w.R,
        B: w.B,
        P,
        h0,
        c0,
        lengths,
      });
      return laidOut(y, states);
    }
    if (reverse) {
      if (lengths) ctx.fail('direction "reverse" with sequence_lens is not supported');
      x = reverseSteps(ctx, x, 1, "reverseX");
    }
    const inputs = [x, h0, c0, lengths].filter((t): t is Tensor => t !== undefined);
    const layer = ctx.add("RNNv2", inputs, {
      op,
      direction: dirs === 2 ? "bidirectional" : "unidirectional",
      hiddenSize: hidden,
      maxSeqLen: steps,
      hasHiddenState: h0 !== undefined,
      hasCellState: c0 !== undefined,
      hasSequenceLengths: lengths !== undefined,
    }) as RNNv2Layer;
    layer.setGates(gates);

    // Y: [B, T, dirs·H] → [B, T, dirs, H].
    let y = layer.output(0);
    if (reverse) y = reverseSteps(ctx, y, 1, "reverseY");
    y = reshape(ctx, y, [y.dims[0], steps, dirs, hidden], "Y");
    return laidOut(y, layer.outputs.slice(1));
  };
}

/** The tensor with its `axis` reversed (a Gather of T−1 … 0). */
function reverseSteps(ctx: ImportContext, t: Tensor, axis: number, suffix: string): Tensor {
  const len = t.dims[axis] as number;
  const order = Array.from({ length: len }, (_, i) => len - 1 - i);
  const idx = ctx.materialize(ConstTensor.of(6, [len], order), `${ctx.node.name}/reversed`);
  return ctx.add("Gather", [t, idx], { axis }, suffix).output(0);
}

registerOp("LSTM", { check: check("LSTM"), import: importRnn("LSTM") });
registerOp("GRU", { check: check("GRU"), import: importRnn("GRU") });
registerOp("RNN", { check: check("RNN"), import: importRnn("RNN") });
