/**
 * RNNv2 on the CPU (equations in dsl/layers/rnn_v2.ts). For each stacked layer and direction:
 *
 *   1. one GEMM projects the inputs of all steps at once: P[N·T × G·H] = X[N·T × in] · Wᵀ,
 *      W being the G gate matrices stacked ([G·H × in]); biases are added to P (all but the
 *      GRU hidden gate's bR, which the reset gate scales and so stays with the recurrence);
 *   2. the recurrence, step by step: Q[N × G·H] = h[N × H] · Rᵀ (one GEMM over the batch),
 *      then the gate non-linearities per item. Items whose sequence has ended keep their state.
 *
 * The backward direction visits item b's steps len_b−1 … 0, so each item runs over its own
 * length. Outputs are written whole (zeros past each length): the arena may hold old values.
 */
import { KilnError } from "../../errors.ts";
import {
  directionsOf,
  gateSlot,
  layerInputSize,
  optionalInputIndex,
  RNN_GATES,
  type RnnAttrs,
} from "../../dsl/layers/rnn_v2.ts";
import { gemm } from "./_gemm.ts";
import { type CpuKernel, f32 } from "./_kernel.ts";

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

export const rnnV2: CpuKernel<RnnAttrs> = ({ layer, attrs, weights, inputs, outputs }) => {
  const [n, steps, embedding] = inputs[0].dims;
  const h = attrs.hiddenSize, dirs = directionsOf(attrs), gates = RNN_GATES[attrs.op];
  const g = gates.length, stateCount = attrs.layers * dirs;
  const at = optionalInputIndex(attrs);
  const h0 = at.hiddenState !== undefined ? f32(inputs[at.hiddenState]) : undefined;
  const c0 = at.cellState !== undefined ? f32(inputs[at.cellState]) : undefined;
  const lengths = sequenceLengths(
    layer,
    n,
    steps,
    at.sequenceLengths !== undefined ? inputs[at.sequenceLengths].data as Int32Array : undefined,
  );
  const hOut = f32(outputs[1]);
  const cOut = attrs.op === "lstm" ? f32(outputs[2]) : undefined;
  const w = (li: number, gate: string, part: "W" | "R" | "bW" | "bR") =>
    weights[gateSlot(attrs, li, gate as never, part)] as Float32Array | undefined;

  let x = f32(inputs[0]);
  let y = new Float32Array(0);
  for (let l = 0; l < attrs.layers; l++) {
    const inSize = layerInputSize(attrs, l, embedding);
    const skip = attrs.inputMode === "skip" && l === 0;
    y = new Float32Array(n * steps * dirs * h);
    for (let dir = 0; dir < dirs; dir++) {
      const li = l * dirs + dir;
      // 1. Input projections of every step, gates side by side: P[(b·T + t), gate·H + j].
      const p = new Float32Array(n * steps * g * h);
      if (skip) {
        for (let r = 0; r < n * steps; r++) {
          for (let k = 0; k < g; k++) p.set(x.subarray(r * h, r * h + h), (r * g + k) * h);
        }
      } else {
        const wStack = new Float32Array(g * h * inSize);
        gates.forEach((gate, k) => wStack.set(w(li, gate, "W")!, k * h * inSize));
        gemm({
          m: n * steps,
          n: g * h,
          k: inSize,
          a: x,
          lda: inSize,
          b: wStack,
          ldb: inSize,
          transB: true,
          c: p,
          ldc: g * h,
        });
      }
      // Biases folded into P; the GRU hidden gate's bR goes inside r ⊙ (Rh h + bRh).
      const bias = new Float32Array(g * h);
      const bRHidden = new Float32Array(h);
      gates.forEach((gate, k) => {
        const bW = w(li, gate, "bW"), bR = w(li, gate, "bR");
        for (let j = 0; j < h; j++) {
          bias[k * h + j] = (bW?.[j] ?? 0) + (gate === "hidden" ? 0 : bR?.[j] ?? 0);
        }
        if (gate === "hidden" && bR) bRHidden.set(bR);
      });
      for (let r = 0; r < n * steps; r++) {
        for (let i = 0; i < g * h; i++) p[r * g * h + i] += bias[i];
      }

      // Rᵀ stacked: [H × G·H], so Q = h · Rᵀ is a plain row-major GEMM each step.
      const rT = new Float32Array(h * g * h);
      gates.forEach((gate, k) => {
        const r = w(li, gate, "R")!;
        for (let j = 0; j < h; j++) {
          for (let i = 0; i < h; i++) rT[i * g * h + k * h + j] = r[j * h + i];
        }
      });

      // 2. The recurrence.
      const state = new Float32Array(n * h);
      const cell = new Float32Array(n * h);
      for (let b = 0; b < n; b++) {
        const src = (b * stateCount + li) * h;
        if (h0) state.set(h0.subarray(src, src + h), b * h);
        if (c0) cell.set(c0.subarray(src, src + h), b * h);
      }
      const q = new Float32Array(n * g * h);
      for (let s = 0; s < steps; s++) {
        gemm({ m: n, n: g * h, k: h, a: state, lda: h, b: rT, ldb: g * h, c: q, ldc: g * h });
        for (let b = 0; b < n; b++) {
          if (s >= lengths[b]) continue;
          const t = dir === 0 ? s : lengths[b] - 1 - s;
          const pRow = (b * steps + t) * g * h, qRow = b * g * h, hb = b * h;
          for (let j = 0; j < h; j++) {
            const pre = (k: number) => p[pRow + k * h + j] + q[qRow + k * h + j];
            let next: number;
            switch (attrs.op) {
              case "lstm": {
                // Gate order: input, output, forget, cell.
                const i = sigmoid(pre(0)), o = sigmoid(pre(1)), f = sigmoid(pre(2));
                const c = f * cell[hb + j] + i * Math.tanh(pre(3));
                cell[hb + j] = c;
                next = o * Math.tanh(c);
                break;
              }
              case "gru": {
                // Gate order: update, reset, hidden.
                const z = sigmoid(pre(0)), r = sigmoid(pre(1));
                const cand = Math.tanh(
                  p[pRow + 2 * h + j] + r * (q[qRow + 2 * h + j] + bRHidden[j]),
                );
                next = (1 - z) * cand + z * state[hb + j];
                break;
              }
              case "rnn_relu":
                next = Math.max(0, pre(0));
                break;
              case "rnn_tanh":
                next = Math.tanh(pre(0));
                break;
            }
            // Every gate of item b reads the old state through q, computed before this loop.
            state[hb + j] = next;
            y[((b * steps + t) * dirs + dir) * h + j] = next;
          }
        }
      }
      for (let b = 0; b < n; b++) {
        const dst = (b * stateCount + li) * h;
        hOut.set(state.subarray(b * h, b * h + h), dst);
        cOut?.set(cell.subarray(b * h, b * h + h), dst);
      }
    }
    x = y;
  }
  f32(outputs[0]).set(y);
};

/** Per-item lengths, checked to lie in [0, T] (T for every item when none are given). */
function sequenceLengths(
  layer: string,
  n: number,
  steps: number,
  given: Int32Array | undefined,
): Int32Array {
  if (!given) return new Int32Array(n).fill(steps);
  for (let b = 0; b < n; b++) {
    const v = given[b];
    if (!(v >= 0 && v <= steps)) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `RNNv2 layer "${layer}": sequence length ${v} of batch item ${b} is outside [0, ${steps}] (the input's sequence dimension)`,
        { layer },
      );
    }
  }
  return given.slice(0, n);
}
