/**
 * LSTM and GRU cases RNNv2 does not compute, unrolled over the (fixed) sequence into plain
 * layers: the GRU with linear_before_reset=0 (ONNX's default: the reset gate scales H before
 * Rh) and the LSTM with peephole connections. ONNX's equations, per step t (σ = sigmoid):
 *
 *   LSTM  i = σ(x·Wiᵀ + H·Riᵀ + Pi⊙C + bi)     f = σ(x·Wfᵀ + H·Rfᵀ + Pf⊙C + bf)
 *         c̃ = tanh(x·Wcᵀ + H·Rcᵀ + bc)         C' = f⊙C + i⊙c̃
 *         o = σ(x·Woᵀ + H·Roᵀ + Po⊙C' + bo)    H' = o⊙tanh(C')
 *   GRU   z = σ(x·Wzᵀ + H·Rzᵀ + bz)            r = σ(x·Wrᵀ + H·Rrᵀ + br)
 *         h̃ = tanh(x·Whᵀ + (r⊙H)·Rhᵀ + bh)     H' = (1 − z)⊙h̃ + z⊙H = h̃ + z⊙(H − h̃)
 *
 * with b the sum of the W and R biases. The input projections of all steps are one
 * FullyConnected; each step adds a FullyConnected on H and the gate arithmetic.
 */
import type { Tensor } from "../../dsl/ir/graph.ts";
import { ConstTensor } from "./_const.ts";
import { type ImportContext, reshape } from "./_registry.ts";

/** Unrolling stops here: beyond, the network would grow by thousands of layers. */
export const MAX_UNROLLED_STEPS = 256;

export interface UnrolledRnn {
  kind: "LSTM" | "GRU";
  /** [B, T, I], batch first. */
  x: Tensor;
  hidden: number;
  dirs: 1 | 2;
  /** A single direction that runs from the last step to the first. */
  reverse: boolean;
  /** ONNX's packed W [dirs, G·H, I], R [dirs, G·H, H], B [dirs, 2·G·H], P [dirs, 3·H]. */
  W: Float32Array;
  R: Float32Array;
  B?: Float32Array;
  P?: Float32Array;
  /** [B, dirs, H], batch first. */
  h0?: Tensor;
  c0?: Tensor;
  /** int32 [B]: steps at or past an item's length keep its state and output zeros. */
  lengths?: Tensor;
}

/** Y [B, T, dirs, H], Y_h [B, dirs, H] and, for the LSTM, Y_c [B, dirs, H]. */
export function unrollRnn(ctx: ImportContext, a: UnrolledRnn): Tensor[] {
  const [, stepsDim, inputDim] = a.x.dims;
  const steps = stepsDim as number, input = inputDim as number, h = a.hidden;
  const g = a.kind === "LSTM" ? 4 : 3;
  if (steps * a.dirs > MAX_UNROLLED_STEPS) {
    ctx.fail(
      `${a.kind} with ${
        a.kind === "LSTM" ? "peepholes" : "linear_before_reset=0"
      } is unrolled over its steps; ${steps} steps × ${a.dirs} direction(s) exceed ${MAX_UNROLLED_STEPS}`,
    );
  }
  let n = 0;
  const name = (what: string) => `${what}${n++}`;
  const fc = (t: Tensor, rows: Float32Array, outputs: number, bias?: Float32Array) =>
    ctx.add("FullyConnected", [t], {
      outputs,
      axis: t.dims.length - 1,
      weights: rows,
      bias,
    }, name("fc")).output(0);
  const ew = (op: string, x: Tensor, y: Tensor) =>
    ctx.add("ElementWise", [x, y], { op }, name(op)).output(0);
  const act = (type: string, x: Tensor) =>
    ctx.add("Activation", [x], { type }, name(type)).output(0);
  /** Elements [from, to) of the last axis. */
  const lastAxis = (t: Tensor, from: number, to: number) => {
    const len = t.dims[t.dims.length - 1] as number;
    return ctx.add("Padding", [t], { pre: [-from], post: [-(len - to)] }, name("gate")).output(0);
  };
  /** Item `k` of axis 1 of a [B, K, ...] tensor, that axis dropped. */
  const item = (t: Tensor, k: number) => {
    const len = t.dims[1] as number;
    const rest = t.dims.length - 2;
    const cut = ctx.add("Padding", [t], {
      pre: [-k, ...new Array(rest).fill(0)],
      post: [-(len - k - 1), ...new Array(rest).fill(0)],
    }, name("step")).output(0);
    return reshape(ctx, cut, [t.dims[0], ...t.dims.slice(2)], name("squeeze"));
  };
  const constant = (values: ArrayLike<number>, dims: number[]) =>
    ctx.materialize(ConstTensor.of(1, dims, values), `${ctx.node.name}/${name("const")}`);
  const zeros = constant(new Float32Array(h), [1, h]);
  // With lengths, step t of item b counts when t < len_b: mask = clip(len_b − t, 0, 1) (integers).
  const lengths = a.lengths
    ? reshape(
      ctx,
      ctx.add("Identity", [a.lengths], { dtype: "float32" }, name("lengths")).output(0),
      [a.lengths.dims[0], 1],
      name("lengths"),
    )
    : undefined;
  const maskAt = (t: Tensor, step: number) => {
    const shifted = ctx.add("Scale", [t], { mode: "uniform", shift: [-step] }, name("t")).output(0);
    return ctx.add("Activation", [shifted], { type: "clip", alpha: 0, beta: 1 }, name("mask"))
      .output(0);
  };
  /** prev + mask⊙(next − prev): the new state where the step counts, else the old one. */
  const masked = (mask: Tensor, next: Tensor, prev: Tensor) =>
    ew("sum", prev, ew("prod", mask, ew("sub", next, prev)));

  const ys: Tensor[] = [], hs: Tensor[] = [], cs: Tensor[] = [];
  for (let d = 0; d < a.dirs; d++) {
    const W = a.W.subarray(d * g * h * input, (d + 1) * g * h * input);
    const R = a.R.subarray(d * g * h * h, (d + 1) * g * h * h);
    const bias = new Float32Array(g * h);
    if (a.B) {
      for (let k = 0; k < g * h; k++) {
        bias[k] = a.B[d * 2 * g * h + k] + a.B[d * 2 * g * h + g * h + k];
      }
    }
    // The input projections of every step at once: [B, T, G·H].
    const xw = fc(a.x, W, g * h, bias);
    let H = a.h0 ? item(a.h0, d) : zeros;
    let C = a.c0 ? item(a.c0, d) : zeros;
    const out = new Array<Tensor>(steps);
    // Peephole weights of this direction, ONNX's order i, o, f.
    const peep = a.P
      ? [0, 1, 2].map((q) => constant(a.P!.subarray((d * 3 + q) * h, (d * 3 + q + 1) * h), [h]))
      : [];
    const backward = a.reverse || d === 1;
    for (let k = 0; k < steps; k++) {
      const t = backward ? steps - 1 - k : k;
      const x = item(xw, t);
      const Hprev = H, Cprev = C;
      if (a.kind === "LSTM") {
        const gates = ew("sum", x, fc(H, R, 4 * h));
        // ONNX's gate order: i, o, f, c; peepholes P: i, o, f.
        let [gi, go, gf] = [0, 1, 2].map((q) => lastAxis(gates, q * h, (q + 1) * h));
        const gc = lastAxis(gates, 3 * h, 4 * h);
        if (a.P) {
          gi = ew("sum", gi, ew("prod", C, peep[0]));
          gf = ew("sum", gf, ew("prod", C, peep[2]));
        }
        C = ew(
          "sum",
          ew("prod", act("sigmoid", gf), C),
          ew("prod", act("sigmoid", gi), act("tanh", gc)),
        );
        if (a.P) go = ew("sum", go, ew("prod", C, peep[1]));
        H = ew("prod", act("sigmoid", go), act("tanh", C));
      } else {
        const zr = ew("sum", lastAxis(x, 0, 2 * h), fc(H, R.subarray(0, 2 * h * h), 2 * h));
        const z = act("sigmoid", lastAxis(zr, 0, h));
        const r = act("sigmoid", lastAxis(zr, h, 2 * h));
        const hh = act(
          "tanh",
          ew("sum", lastAxis(x, 2 * h, 3 * h), fc(ew("prod", r, H), R.subarray(2 * h * h), h)),
        );
        H = ew("sum", hh, ew("prod", z, ew("sub", H, hh)));
      }
      let y = H;
      if (lengths) {
        const mask = maskAt(lengths, t);
        H = masked(mask, H, Hprev);
        if (a.kind === "LSTM") C = masked(mask, C, Cprev);
        y = ew("prod", mask, y);
      }
      out[t] = reshape(ctx, y, [y.dims[0], 1, 1, h], name("y"));
    }
    ys.push(ctx.add("Concatenation", out, { axis: 1 }, name("Y")).output(0));
    hs.push(reshape(ctx, H, [H.dims[0], 1, h], name("h")));
    if (a.kind === "LSTM") cs.push(reshape(ctx, C, [C.dims[0], 1, h], name("c")));
  }
  const join = (parts: Tensor[], axis: number) =>
    parts.length === 1
      ? parts[0]
      : ctx.add("Concatenation", parts, { axis }, name("dirs")).output(0);
  const result = [join(ys, 2), join(hs, 1)];
  if (a.kind === "LSTM") result.push(join(cs, 1));
  return result;
}
