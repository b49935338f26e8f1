/**
 * Importers of Caffe's elementwise layers: activations (ReLU, PReLU, Sigmoid, TanH, ELU, BNLL,
 * AbsVal, Clip, Exp, Log), affine layers (Power, BatchNorm, Scale, Bias) and Eltwise.
 *
 * BatchNorm becomes a per-channel Scale; a Scale that alone reads its output is folded into
 * that same Kiln layer (named "bn + scale", with both as sources), as NvCaffeParser did.
 */
import { type Dim, formatDims, N } from "../../dsl/ir/dims.ts";
import type { Layer, Tensor } from "../../dsl/ir/graph.ts";
import { caffeAxis, type ImportContext, registerImporter, simple, single } from "./_registry.ts";

const act = (type: string, extra: Record<string, unknown> = {}) =>
  simple("Activation", () => ({ type, ...extra }));

registerImporter("ReLU", {
  kinds: ["Activation"],
  import: (ctx) => {
    const slope = ctx.param("relu_param").negative_slope as number;
    return single(
      ctx,
      "Activation",
      slope ? { type: "leaky_relu", alpha: slope } : { type: "relu" },
    );
  },
});
registerImporter("Sigmoid", act("sigmoid"));
registerImporter("TanH", act("tanh"));
registerImporter("BNLL", act("softplus"));
registerImporter("ELU", {
  kinds: ["Activation"],
  import: (ctx) => single(ctx, "Activation", { type: "elu", alpha: ctx.param("elu_param").alpha }),
});
registerImporter("Clip", {
  kinds: ["Activation"],
  import: (ctx) => {
    const p = ctx.param("clip_param");
    return single(ctx, "Activation", { type: "clip", alpha: p.min, beta: p.max });
  },
});
registerImporter("AbsVal", simple("Unary", () => ({ op: "abs" })));

/** y = x·scale + shift (uniform), as a Kiln Scale layer, or `x` itself when it is the identity. */
function affine(ctx: ImportContext, x: Tensor, scale: number, shift: number, name: string): Tensor {
  if (scale === 1 && shift === 0) return x;
  return ctx.add("Scale", [x], { mode: "uniform", scale: [scale], shift: [shift] }, name).output(0);
}

/** Caffe's `base` of Exp and Log: -1 means e; otherwise it must be positive. */
function lnBase(ctx: ImportContext, base: number): number {
  if (base === -1) return 1;
  if (!(base > 0)) ctx.fail(`base ${base} must be positive (or -1 for e)`);
  return Math.log(base);
}

// Exp: y = base^(shift + scale·x) = exp(ln(base)·(shift + scale·x)).
registerImporter("Exp", {
  kinds: ["Scale", "Unary"],
  import: (ctx) => {
    const p = ctx.param("exp_param");
    const lb = lnBase(ctx, p.base as number);
    const x = affine(
      ctx,
      ctx.inputs[0],
      lb * (p.scale as number),
      lb * (p.shift as number),
      `${ctx.layer.name}/affine`,
    );
    return ctx.add("Unary", [x], { op: "exp" }).output(0);
  },
});

// Log: y = log_base(shift + scale·x) = ln(shift + scale·x) / ln(base).
registerImporter("Log", {
  kinds: ["Scale", "Unary"],
  import: (ctx) => {
    const p = ctx.param("log_param");
    const lb = lnBase(ctx, p.base as number);
    const x = affine(
      ctx,
      ctx.inputs[0],
      p.scale as number,
      p.shift as number,
      `${ctx.layer.name}/affine`,
    );
    const name = lb === 1 ? ctx.layer.name : `${ctx.layer.name}/ln`;
    const y = ctx.add("Unary", [x], { op: "log" }, name).output(0);
    return affine(ctx, y, 1 / lb, 0, ctx.layer.name);
  },
});

// Power: y = (shift + scale·x)^power, one uniform Scale layer.
registerImporter("Power", {
  kinds: ["Scale"],
  import: (ctx) => {
    const p = ctx.param("power_param");
    const power = p.power as number;
    return single(ctx, "Scale", {
      mode: "uniform",
      scale: [p.scale as number],
      shift: [p.shift as number],
      power: power === 1 ? undefined : [power],
    });
  },
});

/**
 * PReLU: y = max(0, x) + slope·min(0, x), with a slope per channel (or one). Kiln has no PReLU
 * kind, so it is decomposed with existing kinds as y = slope·x + (1 − slope)·relu(x): two
 * Scale layers, a ReLU and a sum (for x > 0: slope·x + (1 − slope)·x = x; for x ≤ 0: slope·x).
 */
registerImporter("PReLU", {
  kinds: ["Scale", "Activation", "ElementWise"],
  import: (ctx) => {
    const p = ctx.param("prelu_param");
    const x = ctx.inputs[0];
    const shared = p.channel_shared as boolean;
    if (!shared && x.dims.length < 2) {
      ctx.fail(`needs a channel axis; the input is ${formatDims(x.dims)}`);
    }
    const c = shared ? 1 : channelCount(ctx, x.dims, 1);
    const slope = ctx.blob(0, [c], "bias");
    const mode = shared ? { mode: "uniform" } : { mode: "channel", channelAxis: 1 };
    const n = ctx.layer.name;
    const negPart = ctx.add("Scale", [x], { ...mode, scale: slope }, `${n}/slope`).output(0);
    const relu = ctx.add("Activation", [x], { type: "relu" }, `${n}/relu`).output(0);
    const rest = slope.map((s) => 1 - s);
    const posPart = ctx.add("Scale", [relu], { ...mode, scale: rest }, `${n}/rest`).output(0);
    return ctx.add("ElementWise", [negPart, posPart], { op: "sum" }).output(0);
  },
});

function channelCount(ctx: ImportContext, dims: readonly Dim[], axis: number): number {
  const c = dims[axis];
  if (c === N || c === undefined) {
    ctx.fail(`axis ${axis} of ${formatDims(dims)} is not a channel axis`);
  }
  return c as number;
}

/**
 * BatchNorm (inference): y = (x − mean/f) / sqrt(var/f + eps), f being the stored moving-average
 * factor (blob 2; 0 means 0). One per-channel Scale layer.
 */
registerImporter("BatchNorm", {
  kinds: ["Scale"],
  import: (ctx) => {
    const p = ctx.param("batch_norm_param");
    const x = ctx.inputs[0];
    const c = x.dims.length > 1 ? channelCount(ctx, x.dims, 1) : 1;
    if (ctx.given("batch_norm_param", "use_global_stats") && !p.use_global_stats) {
      ctx.note(
        "use_global_stats is false: Caffe would normalize with the batch's own statistics; " +
          "Kiln uses the stored mean and variance (as TensorRT)",
      );
    }
    const mean = ctx.blob(0, [c], "bias"), variance = ctx.blob(1, [c], "positive");
    const f = ctx.blob(2, [1], "one")[0];
    const k = f === 0 ? 0 : 1 / f;
    const eps = p.eps as number;
    const scale = new Float32Array(c), shift = new Float32Array(c);
    for (let i = 0; i < c; i++) {
      const inv = 1 / Math.sqrt(variance[i] * k + eps);
      scale[i] = inv;
      shift[i] = -mean[i] * k * inv;
    }
    const name = ctx.foldedScale ? `${ctx.layer.name} + ${ctx.foldedScale.name}` : ctx.layer.name;
    const mode = x.dims.length > 1 ? { mode: "channel", channelAxis: 1 } : { mode: "uniform" };
    return ctx.add("Scale", [x], { ...mode, scale, shift }, name).output(0);
  },
});

/**
 * The Kiln Scale mode for a Caffe parameter covering dims [axis, axis + numAxes) of `dims`:
 * uniform (no axes), channel (one axis) or elementwise (all dims of an item).
 */
function affineMode(ctx: ImportContext, dims: readonly Dim[], axis: number, numAxes: number) {
  const a = caffeAxis(ctx, axis, dims.length);
  const n = numAxes === -1 ? dims.length - a : numAxes;
  if (n < 0 || a + n > dims.length) {
    ctx.fail(`num_axes ${numAxes} from axis ${axis} does not fit ${formatDims(dims)}`);
  }
  const covered = dims.slice(a, a + n);
  if (covered.includes(N)) {
    ctx.fail(`the parameter cannot span the batch dimension of ${formatDims(dims)}`);
  }
  const count = (covered as number[]).reduce((v, d) => v * d, 1);
  if (n === 0) return { attrs: { mode: "uniform" }, count: 1 };
  if (n === 1) return { attrs: { mode: "channel", channelAxis: a }, count };
  const firstItemAxis = dims[0] === N ? 1 : 0;
  const trailing = (dims.slice(a + n) as number[]).reduce((v, d) => v * d, 1);
  if (a === firstItemAxis && trailing === 1) return { attrs: { mode: "elementwise" }, count };
  return ctx.fail(
    `a parameter over dims ${a}..${a + n - 1} of ${formatDims(dims)} is not supported (one axis, ` +
      `none, or every dim of an item)`,
    "UNSUPPORTED",
  );
}

/** Caffe Scale: y = x·gamma (+ beta) over the covered axes; gamma learned or from bottom 1. */
registerImporter("Scale", {
  kinds: ["Scale"],
  import: (ctx) => {
    const p = ctx.param("scale_param");
    if (ctx.inputs.length > 1) return scaleByBlob(ctx, p.axis as number, p.bias_term as boolean);
    const x = ctx.inputs[0];
    const { attrs, count } = affineMode(ctx, x.dims, p.axis as number, p.num_axes as number);
    const gamma = ctx.blob(0, [count], "positive");
    const beta = p.bias_term ? ctx.blob(1, [count], "bias") : undefined;
    if (ctx.foldInto) return foldIntoBatchNorm(ctx, ctx.foldInto, gamma, beta);
    return single(ctx, "Scale", { ...attrs, scale: gamma, shift: beta });
  },
});

/** Multiplies the BatchNorm's Scale layer by gamma and adds beta: one layer for both. */
function foldIntoBatchNorm(
  ctx: ImportContext,
  bn: Layer,
  gamma: Float32Array,
  beta: Float32Array | undefined,
): Tensor {
  const s = bn.weights.get("scale")!.values as Float32Array;
  const t = bn.weights.get("shift")!.values as Float32Array;
  if (gamma.length !== s.length) {
    ctx.fail(`has ${gamma.length} scales; the BatchNorm before it has ${s.length} channels`);
  }
  bn.setWeights("scale", s.map((v, i) => v * gamma[i]));
  bn.setWeights("shift", t.map((v, i) => v * gamma[i] + (beta ? beta[i] : 0)));
  bn.sources.push(ctx.layer.name);
  return bn.output(0);
}

/** Scale with two bottoms: x · y, y's dims lined up with x's from `axis`. */
function scaleByBlob(ctx: ImportContext, axis: number, bias: boolean): Tensor {
  const [x, y] = ctx.inputs;
  const a = caffeAxis(ctx, axis, x.dims.length);
  const fits = y.dims.every((d, i) => d === x.dims[a + i]);
  if (!fits) {
    ctx.fail(`bottom 1 ${formatDims(y.dims)} must match ${formatDims(x.dims)} from axis ${a}`);
  }
  // Trailing 1s make numpy broadcasting line y up with x at `axis`.
  const ones = x.dims.length - a - y.dims.length;
  let yb = y;
  if (ones > 0) {
    const reshape = [
      ...y.dims.map((d, i) => (i === 0 && d === N ? 0 : d)),
      ...new Array(ones).fill(1),
    ];
    yb = ctx.add("Shuffle", [y], { reshape }, `${ctx.layer.name}/align`).output(0);
  }
  const name = bias ? `${ctx.layer.name}/mul` : ctx.layer.name;
  const prod = ctx.add("ElementWise", [x, yb], { op: "prod" }, name).output(0);
  if (!bias) return prod;
  if (y.dims.length !== 1) {
    ctx.fail("a bias with a two-bottom Scale is supported over one axis only", "UNSUPPORTED");
  }
  const beta = ctx.blob(0, [y.dims[0] as number], "bias");
  return ctx.add("Scale", [prod], { mode: "channel", channelAxis: a, shift: beta }).output(0);
}

/** Caffe Bias: y = x + beta over the covered axes (one bottom; beta learned). */
registerImporter("Bias", {
  kinds: ["Scale"],
  import: (ctx) => {
    const p = ctx.param("bias_param");
    if (ctx.inputs.length > 1) {
      ctx.fail("Bias with a second bottom is not supported", "UNSUPPORTED");
    }
    const { attrs, count } = affineMode(
      ctx,
      ctx.inputs[0].dims,
      p.axis as number,
      p.num_axes as number,
    );
    return single(ctx, "Scale", { ...attrs, shift: ctx.blob(0, [count], "bias") });
  },
});

/** Eltwise: SUM (with a coefficient per bottom), PROD or MAX of any number of same-shape bottoms. */
registerImporter("Eltwise", {
  kinds: ["ElementWise", "Scale"],
  import: (ctx) => {
    const p = ctx.param("eltwise_param");
    const coeff = p.coeff as number[];
    const op = p.operation as string;
    if (ctx.inputs.length < 2) ctx.fail(`takes at least 2 bottoms, got ${ctx.inputs.length}`);
    if (coeff.length && coeff.length !== ctx.inputs.length) {
      ctx.fail(`has ${coeff.length} coefficients for ${ctx.inputs.length} bottoms`);
    }
    if (coeff.length && op === "PROD") ctx.fail("coefficients apply to SUM only, not PROD");
    if (coeff.length && op === "MAX") ctx.note("coefficients are ignored by MAX (as in Caffe)");
    const d0 = ctx.inputs[0].dims;
    ctx.inputs.forEach((t, i) => {
      if (t.dims.length !== d0.length || t.dims.some((d, k) => d !== d0[k])) {
        ctx.fail(
          `bottoms must have the same shape: ${formatDims(d0)} vs ${
            formatDims(t.dims)
          } (bottom ${i})`,
          "SHAPE_MISMATCH",
        );
      }
    });
    const ins = op !== "SUM"
      ? ctx.inputs
      : ctx.inputs.map((t, i) => affine(ctx, t, coeff[i] ?? 1, 0, `${ctx.layer.name}/coeff${i}`));
    const kiln = op === "SUM" ? "sum" : op === "PROD" ? "prod" : "max";
    return ctx.add("ElementWise", ins, { op: kiln }).output(0);
  },
});
