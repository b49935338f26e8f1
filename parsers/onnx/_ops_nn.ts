/**
 * ONNX's layer-shaped ops: Conv, ConvTranspose, MaxPool, AveragePool, the global pools,
 * BatchNormalization, InstanceNormalization, LRN, Gemm and MatMul. Kiln's convolution and
 * pooling layers are 2-D: 1-D ops run as 2-D ones over an [N, C, 1, L] view; 3-D ones are
 * refused.
 */
import { type Dims, formatDims, N } from "../../dsl/ir/dims.ts";
import type { Tensor } from "../../dsl/ir/graph.ts";
import { ConstTensor } from "./_const.ts";
import { floatTensor } from "./_ops_math.ts";
import { type ImportContext, registerOp, reshape } from "./_registry.ts";

const AUTO_PADS = ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"];

function checkAutoPad(attr: { string(n: string, f: string): string }): string[] {
  const p = attr.string("auto_pad", "NOTSET");
  return AUTO_PADS.includes(p) ? [] : [`auto_pad "${p}" is not one of ${AUTO_PADS.join(", ")}`];
}

/** Window geometry of a conv or pool over `sizes` (the spatial dims), ONNX's rules. */
interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  pre: number[];
  post: number[];
}

function windowOf(ctx: ImportContext, sizes: number[], kernel: number[]): Window {
  const n = sizes.length;
  const list = (name: string, fallback: number) => {
    const v = ctx.attr.ints(name) ?? new Array(n).fill(fallback);
    if (v.length !== n || v.some((x) => !Number.isInteger(x) || x < (fallback === 0 ? 0 : 1))) {
      ctx.fail(
        `${name} [${v.join(", ")}] must hold ${n} ${
          fallback === 0 ? "non-negative" : "positive"
        } integers`,
        "INVALID_ATTRIBUTE",
      );
    }
    return v;
  };
  const strides = list("strides", 1), dilations = list("dilations", 1);
  const autoPad = ctx.attr.string("auto_pad", "NOTSET");
  let pre: number[], post: number[];
  if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
    pre = [], post = [];
    sizes.forEach((s, i) => {
      const out = Math.ceil(s / strides[i]);
      const total = Math.max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - s);
      const small = Math.floor(total / 2);
      pre.push(autoPad === "SAME_UPPER" ? small : total - small);
      post.push(total - pre[i]);
    });
  } else if (autoPad === "VALID") {
    pre = new Array(n).fill(0), post = new Array(n).fill(0);
  } else {
    const pads = ctx.attr.ints("pads") ?? new Array(2 * n).fill(0);
    if (pads.length !== 2 * n || pads.some((p) => !Number.isInteger(p) || p < 0)) {
      ctx.fail(
        `pads [${pads.join(", ")}] must hold ${2 * n} non-negative integers`,
        "INVALID_ATTRIBUTE",
      );
    }
    pre = pads.slice(0, n), post = pads.slice(n);
  }
  return { kernel, strides, dilations, pre, post };
}

/** Input `i` as [N, C, H, W] (1-D [N, C, L] becomes [N, C, 1, L]); refuses other ranks. */
function spatial4d(ctx: ImportContext, x: Tensor): { x4: Tensor; sizes: number[]; oneD: boolean } {
  const r = x.dims.length;
  if (r !== 3 && r !== 4) {
    ctx.fail(
      `${r - 2}-D ${ctx.node.opType} (input ${formatDims(x.dims)}): Kiln's layers are 1-D or 2-D`,
    );
  }
  const sizes = x.dims.slice(2) as number[];
  if (x.dims.slice(1).some((d) => d === N)) ctx.fail("the symbolic batch N must be dim 0");
  if (r === 4) return { x4: x, sizes, oneD: false };
  return { x4: reshape(ctx, x, [x.dims[0], x.dims[1], 1, x.dims[2]], "as2d"), sizes, oneD: true };
}

/** Pairs for Kiln's 2-D attributes from 1-D or 2-D lists (1-D: the height gets `h`). */
const pair = (
  v: number[],
  h: number,
): [number, number] => (v.length === 1 ? [h, v[0]] : [v[0], v[1]]);

/** Back from the 2-D view of a 1-D op. */
function from2d(ctx: ImportContext, y: Tensor, oneD: boolean): Tensor {
  return oneD ? reshape(ctx, y, [y.dims[0], y.dims[1], y.dims[3]], "as1d") : y;
}

function constWeights(ctx: ImportContext, i: number, what: string): ConstTensor {
  const w = ctx.constInput(i, what);
  if (!w.isFloat) ctx.fail(`${what} must be floating point, got ${w}`);
  return w;
}

/** Bias B [M] (optional input `i`). */
function biasOf(ctx: ImportContext, i: number, m: number): Float32Array | undefined {
  if (!ctx.has(i)) return undefined;
  const b = constWeights(ctx, i, "B");
  if (b.size !== m) ctx.fail(`bias B has ${b.size} values; ${m} expected`, "SHAPE_MISMATCH");
  return Float32Array.from(b.values);
}

registerOp("Conv", {
  check: checkAutoPad,
  import: (ctx) => {
    const { x4, sizes, oneD } = spatial4d(ctx, floatTensor(ctx, 0));
    const w = constWeights(ctx, 1, "W");
    if (w.dims.length !== sizes.length + 2) {
      ctx.fail(
        `W ${formatDims(w.dims)} does not match the input's ${sizes.length} spatial dim(s)`,
        "SHAPE_MISMATCH",
      );
    }
    const kernel = ctx.attr.ints("kernel_shape") ?? w.dims.slice(2);
    if (kernel.some((k, i) => k !== w.dims[2 + i])) {
      ctx.fail(`kernel_shape [${kernel}] differs from W ${formatDims(w.dims)}`, "SHAPE_MISMATCH");
    }
    const g = windowOf(ctx, sizes, kernel);
    const outputs = w.dims[0];
    const y = ctx.add("Convolution", [x4], {
      outputs,
      kernel: pair(kernel, 1),
      stride: pair(g.strides, 1),
      padding: pair(g.pre, 0),
      postPadding: pair(g.post, 0),
      dilation: pair(g.dilations, 1),
      groups: ctx.attr.int("group", 1),
      weights: Float32Array.from(w.values),
      bias: biasOf(ctx, 2, outputs),
    }).output(0);
    return from2d(ctx, y, oneD);
  },
});

registerOp("ConvTranspose", {
  check: checkAutoPad,
  import: (ctx) => {
    const { x4, sizes, oneD } = spatial4d(ctx, floatTensor(ctx, 0));
    const w = constWeights(ctx, 1, "W");
    const n = sizes.length;
    if (w.dims.length !== n + 2) {
      ctx.fail(
        `W ${formatDims(w.dims)} does not match the input's ${n} spatial dim(s)`,
        "SHAPE_MISMATCH",
      );
    }
    const groups = ctx.attr.int("group", 1);
    const kernel = ctx.attr.ints("kernel_shape") ?? w.dims.slice(2);
    const strides = ctx.attr.ints("strides") ?? new Array(n).fill(1);
    const dilations = ctx.attr.ints("dilations") ?? new Array(n).fill(1);
    let outPad = ctx.attr.ints("output_padding") ?? new Array(n).fill(0);
    for (
      const [name, v] of [
        ["kernel_shape", kernel],
        ["strides", strides],
        ["dilations", dilations],
        ["output_padding", outPad],
      ] as const
    ) {
      if (v.length !== n) ctx.fail(`${name} [${v}] must hold ${n} values`, "INVALID_ATTRIBUTE");
    }
    const autoPad = ctx.attr.string("auto_pad", "NOTSET");
    const outputShape = ctx.attr.ints("output_shape");
    let pre: number[], post: number[];
    // The full (uncropped) output extent of each spatial dim.
    const full = sizes.map((s, i) =>
      (s - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 + outPad[i]
    );
    if (outputShape || autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
      const target = outputShape ? outputShape.slice(-n) : sizes.map((s, i) => s * strides[i]);
      if (target.length !== n) {
        ctx.fail(
          `output_shape [${outputShape}] must end with ${n} spatial dims`,
          "INVALID_ATTRIBUTE",
        );
      }
      pre = [], post = [];
      target.forEach((t, i) => {
        const total = full[i] - t;
        if (total < 0) {
          // More output than the kernels reach: the extra rows are output padding.
          outPad = [...outPad];
          outPad[i] += -total;
          pre.push(0), post.push(0);
          return;
        }
        const small = Math.floor(total / 2);
        // SAME_UPPER puts the odd row at the end; otherwise ONNX puts it at the start.
        pre.push(autoPad === "SAME_UPPER" ? small : total - small);
        post.push(total - pre[i]);
      });
    } else if (autoPad === "VALID") {
      pre = new Array(n).fill(0), post = new Array(n).fill(0);
    } else {
      const pads = ctx.attr.ints("pads") ?? new Array(2 * n).fill(0);
      if (pads.length !== 2 * n || pads.some((p) => p < 0)) {
        ctx.fail(`pads [${pads}] must hold ${2 * n} non-negative integers`, "INVALID_ATTRIBUTE");
      }
      pre = pads.slice(0, n), post = pads.slice(n);
    }
    const outputs = w.dims[1] * groups;
    const y = ctx.add("Deconvolution", [x4], {
      outputs,
      kernel: pair(kernel, 1),
      stride: pair(strides, 1),
      padding: pair(pre, 0),
      postPadding: pair(post, 0),
      dilation: pair(dilations, 1),
      groups,
      outputPadding: pair(outPad, 0),
      weights: Float32Array.from(w.values),
      bias: biasOf(ctx, 2, outputs),
    }).output(0);
    return from2d(ctx, y, oneD);
  },
});

function pool(type: "max" | "average") {
  return {
    check: (attr: ImportContext["attr"], _opset: number) => {
      const out = checkAutoPad(attr);
      const d = attr.ints("dilations");
      if (d && d.some((v) => v !== 1)) out.push(`dilations [${d}]: Kiln's pooling has none`);
      if (type === "max" && attr.int("storage_order", 0) !== 0) out.push("storage_order 1");
      return out;
    },
    import: (ctx: ImportContext) => {
      if (ctx.node.outputs.length > 1 && ctx.node.outputs[1] !== "") {
        ctx.fail("the Indices output of MaxPool is not supported");
      }
      const x = floatTensor(ctx, 0);
      const sizes = x.dims.slice(2) as number[];
      const kernel = ctx.attr.ints("kernel_shape");
      if (!kernel || kernel.length !== sizes.length) {
        ctx.fail(`kernel_shape must hold ${sizes.length} values`, "INVALID_ATTRIBUTE");
      }
      const g = windowOf(ctx, sizes, kernel!);
      g.pre.forEach((p, i) => {
        if (p >= kernel![i] || g.post[i] >= kernel![i]) {
          ctx.fail(
            `pads [${g.pre}, ${g.post}] as large as the kernel [${kernel}] (a window of padding alone)`,
          );
        }
      });
      const attrs = (dims: number[], h: number) => ({
        type,
        window: pair(dims.map((i) => g.kernel[i]), h),
        stride: pair(dims.map((i) => g.strides[i]), h),
        padding: pair(dims.map((i) => g.pre[i]), 0),
        postPadding: pair(dims.map((i) => g.post[i]), 0),
        excludePadding: ctx.attr.int("count_include_pad", 0) === 0,
        rounding: ctx.attr.int("ceil_mode", 0) === 1 ? "ceil" : "floor",
      });
      if (sizes.length === 3) return pool3d(ctx, x, attrs);
      const { x4, oneD } = spatial4d(ctx, x);
      const y = ctx.add("Pooling", [x4], attrs(oneD ? [0] : [0, 1], 1)).output(0);
      return from2d(ctx, y, oneD);
    },
  };
}

/**
 * A 3-D pool as two 2-D ones: over (H, W) on an [N, C·D, H, W] view, then over D (a (kd, 1)
 * window) on [N, C, D, H'·W']. Max and average pools are separable: a window's maximum is the
 * maximum of per-row maxima, and its sum and element count (padding counted or not) are
 * products over the dims.
 */
function pool3d(
  ctx: ImportContext,
  x: Tensor,
  attrs: (dims: number[], h: number) => Record<string, unknown>,
): Tensor {
  const [n, c, d, h, w] = x.dims;
  if ([c, d, h, w].some((v) => v === N)) ctx.fail("the symbolic batch N must be dim 0");
  const hw = ctx.add(
    "Pooling",
    [reshape(ctx, x, [n, (c as number) * (d as number), h, w], "hw")],
    attrs([1, 2], 1),
    "hw",
  ).output(0);
  const [oh, ow] = [hw.dims[2] as number, hw.dims[3] as number];
  const flat = reshape(ctx, hw, [n, c, d, oh * ow], "dview");
  const depth = attrs([0], 1);
  // The D pass: window (kd, 1) down the rows of the [D, H'·W'] view.
  const swap = (v: unknown) => [(v as number[])[1], (v as number[])[0]];
  for (const k of ["window", "stride", "padding", "postPadding"]) depth[k] = swap(depth[k]);
  const y = ctx.add("Pooling", [flat], depth, "d").output(0);
  return reshape(ctx, y, [n, c, y.dims[2], oh, ow], "as3d");
}

registerOp("MaxPool", pool("max"));
registerOp("AveragePool", pool("average"));

function globalPool(type: "max" | "average") {
  return {
    import: (ctx: ImportContext) => {
      const x = floatTensor(ctx, 0);
      const r = x.dims.length;
      if (r < 3) ctx.fail(`input ${formatDims(x.dims)} has no spatial dims`, "SHAPE_MISMATCH");
      if (r === 4) return ctx.add("Pooling", [x], { type, global: true }).output(0);
      const axes = Array.from({ length: r - 2 }, (_, i) => i + 2);
      return ctx.add("Reduce", [x], { op: type === "max" ? "max" : "avg", axes, keepDims: true })
        .output(0);
    },
  };
}

registerOp("GlobalMaxPool", globalPool("max"));
registerOp("GlobalAveragePool", globalPool("average"));

/** A [C] parameter as a tensor shaped [C, 1, …] to broadcast over channel dim 1 of `rank` dims. */
function channelParam(ctx: ImportContext, i: number, rank: number, c: number): Tensor {
  const v = ctx.value(i);
  if (v.dims.length !== 1 || v.dims[0] !== c) {
    ctx.fail(
      `input ${i} ("${ctx.node.inputs[i]}") is ${
        formatDims(v.dims)
      }; [${c}] expected (one per channel)`,
      "SHAPE_MISMATCH",
    );
  }
  const dims = [c, ...new Array(rank - 2).fill(1)];
  if (v instanceof ConstTensor) return ctx.materialize(ConstTensor.of(1, dims, v.values));
  return reshape(ctx, floatTensor(ctx, i), dims, `param${i}`);
}

function channels(ctx: ImportContext, x: Tensor): number {
  if (x.dims.length < 2 || x.dims[1] === N) {
    ctx.fail(`input ${formatDims(x.dims)} needs a channel dim 1`, "SHAPE_MISMATCH");
  }
  return x.dims[1] as number;
}

registerOp("BatchNormalization", {
  check: (attr, opset) => {
    const out: string[] = [];
    if (opset < 9 && attr.int("spatial", 1) !== 1) {
      out.push("spatial=0 (per-activation statistics)");
    }
    if (opset >= 14 && attr.int("training_mode", 0) !== 0) out.push("training_mode=1");
    if (opset < 7 && attr.int("is_test", 0) === 0 && attr.has("is_test")) out.push("is_test=0");
    return out;
  },
  import: (ctx) => {
    const x = floatTensor(ctx, 0);
    const c = channels(ctx, x);
    const eps = ctx.attr.float("epsilon", 1e-5);
    const params = [1, 2, 3, 4].map((i) => ctx.constant(i));
    if (params.every((p) => p !== undefined)) {
      const [s, b, m, v] = params as ConstTensor[];
      if ([s, b, m, v].some((p) => p.size !== c)) {
        ctx.fail(
          `scale, B, mean and var must hold ${c} values each (one per channel)`,
          "SHAPE_MISMATCH",
        );
      }
      // y = s·(x − m)/√(v + ε) + b as one per-channel Scale: x·k + (b − m·k).
      const k = new Float64Array(c).map((_, j) => s.values[j] / Math.sqrt(v.values[j] + eps));
      return ctx.add("Scale", [x], {
        mode: "channel",
        channelAxis: 1,
        scale: Float32Array.from(k),
        shift: Float32Array.from(k, (kj, j) => b.values[j] - m.values[j] * kj),
      }).output(0);
    }
    const r = x.dims.length;
    const [s, b, m, v] = [1, 2, 3, 4].map((i) => channelParam(ctx, i, r, c));
    const centered = ctx.add("ElementWise", [x, m], { op: "sub" }, "center").output(0);
    const std = standardDeviation(ctx, v, eps);
    const normed = ctx.add("ElementWise", [centered, std], { op: "div" }, "normalize").output(0);
    const scaled = ctx.add("ElementWise", [normed, s], { op: "prod" }, "scale").output(0);
    return ctx.add("ElementWise", [scaled, b], { op: "sum" }).output(0);
  },
});

/** √(variance + ε). */
function standardDeviation(ctx: ImportContext, variance: Tensor, eps: number): Tensor {
  const plus = ctx.add("Scale", [variance], { mode: "uniform", shift: [eps] }, "epsilon").output(0);
  return ctx.add("Unary", [plus], { op: "sqrt" }, "std").output(0);
}

registerOp("InstanceNormalization", {
  import: (ctx) => {
    const x = floatTensor(ctx, 0);
    const c = channels(ctx, x);
    const r = x.dims.length;
    if (r < 3) ctx.fail(`input ${formatDims(x.dims)} has no spatial dims`, "SHAPE_MISMATCH");
    const eps = ctx.attr.float("epsilon", 1e-5);
    const axes = Array.from({ length: r - 2 }, (_, i) => i + 2);
    // Per item and channel over the spatial dims: (x − mean)/√(mean((x − mean)²) + ε).
    const mean = ctx.add("Reduce", [x], { op: "avg", axes, keepDims: true }, "mean").output(0);
    const centered = ctx.add("ElementWise", [x, mean], { op: "sub" }, "center").output(0);
    const sq = ctx.add("ElementWise", [centered, centered], { op: "prod" }, "square").output(0);
    const variance = ctx.add("Reduce", [sq], { op: "avg", axes, keepDims: true }, "variance")
      .output(0);
    const std = standardDeviation(ctx, variance, eps);
    const normed = ctx.add("ElementWise", [centered, std], { op: "div" }, "normalize").output(0);
    const s = ctx.constant(1), b = ctx.constant(2);
    if (s && b) {
      if (s.size !== c || b.size !== c) {
        ctx.fail(`scale and B must hold ${c} values`, "SHAPE_MISMATCH");
      }
      return ctx.add("Scale", [normed], {
        mode: "channel",
        channelAxis: 1,
        scale: Float32Array.from(s.values),
        shift: Float32Array.from(b.values),
      }).output(0);
    }
    const scaled = ctx.add(
      "ElementWise",
      [normed, channelParam(ctx, 1, r, c)],
      { op: "prod" },
      "scale",
    )
      .output(0);
    return ctx.add("ElementWise", [scaled, channelParam(ctx, 2, r, c)], { op: "sum" }).output(0);
  },
});

registerOp("LayerNormalization", {
  check: (attr) =>
    attr.int("stash_type", 1) === 1
      ? []
      : [`stash_type ${attr.int("stash_type", 1)} (Kiln computes in float32)`],
  import: (ctx) => {
    const x = floatTensor(ctx, 0);
    const r = x.dims.length;
    let axis = ctx.attr.int("axis", -1);
    if (axis < 0) axis += r;
    if (!(axis >= 0 && axis < r)) {
      ctx.fail(`axis ${ctx.attr.int("axis")} is out of range for rank ${r}`, "INVALID_ATTRIBUTE");
    }
    const axes = Array.from({ length: r - axis }, (_, i) => i + axis);
    if (axes.some((a) => x.dims[a] === N)) {
      ctx.fail(`normalizing over the symbolic batch N (axis ${axis})`);
    }
    const eps = ctx.attr.float("epsilon", 1e-5);
    const mean = ctx.add("Reduce", [x], { op: "avg", axes, keepDims: true }, "mean").output(0);
    const centered = ctx.add("ElementWise", [x, mean], { op: "sub" }, "center").output(0);
    const sq = ctx.add("ElementWise", [centered, centered], { op: "prod" }, "square").output(0);
    const variance = ctx.add("Reduce", [sq], { op: "avg", axes, keepDims: true }, "variance")
      .output(0);
    const inv = ctx.add(
      "Unary",
      [standardDeviation(ctx, variance, eps)],
      { op: "recip" },
      "invStdDev",
    ).output(0);
    let y = ctx.add("ElementWise", [centered, inv], { op: "prod" }, "normalize").output(0);
    y = ctx.add("ElementWise", [y, floatTensor(ctx, 1)], { op: "prod" }, "scale").output(0);
    if (ctx.has(2)) {
      y = ctx.add("ElementWise", [y, floatTensor(ctx, 2)], { op: "sum" }, "bias").output(0);
    }
    return [y, mean, inv];
  },
});

registerOp("LRN", {
  check: (attr) => {
    const size = attr.int("size");
    const out: string[] = [];
    if (size === undefined) return ['the "size" attribute is missing'];
    if (size % 2 !== 1 || size > 15) out.push(`size ${size}: Kiln's LRN window is odd, 1 to 15`);
    if (attr.float("beta", 0.75) < 0.01) out.push(`beta ${attr.float("beta", 0.75)} below 0.01`);
    if (attr.float("bias", 1) < 1e-5) out.push(`bias ${attr.float("bias", 1)} below 1e-5`);
    return out;
  },
  import: (ctx) => {
    const x = floatTensor(ctx, 0);
    const r = x.dims.length;
    if (r < 3) {
      ctx.fail(
        `input ${formatDims(x.dims)} needs a channel dim and spatial dims`,
        "SHAPE_MISMATCH",
      );
    }
    // Kiln normalizes over the third dim from the end: view any rank as [N, C, rest, 1].
    const rest = (x.dims.slice(2) as number[]).reduce((a, b) => a * b, 1);
    const x4 = r === 4 ? x : reshape(ctx, x, [x.dims[0], x.dims[1], rest, 1], "as4d");
    const y = ctx.add("LRN", [x4], {
      window: ctx.attr.int("size", 1),
      alpha: ctx.attr.float("alpha", 1e-4),
      beta: ctx.attr.float("beta", 0.75),
      k: ctx.attr.float("bias", 1),
    }).output(0);
    return r === 4 ? y : reshape(ctx, y, x.dims, "back");
  },
});

/** β·C added to y (C broadcast), or y when there is no C. */
function addScaledC(ctx: ImportContext, y: Tensor, beta: number): Tensor {
  if (!ctx.has(2) || beta === 0) return y;
  const c = ctx.constant(2);
  let ct: Tensor;
  if (c) {
    ct = ctx.materialize(
      ConstTensor.of(1, c.dims, c.values.map((v) => beta * v)),
      ctx.node.inputs[2],
    );
  } else {
    ct = floatTensor(ctx, 2);
    if (beta !== 1) {
      ct = ctx.add("Scale", [ct], { mode: "uniform", scale: [beta] }, "beta").output(0);
    }
  }
  return ctx.add("ElementWise", [y, ct], { op: "sum" }, "addC").output(0);
}

registerOp("Gemm", {
  import: (ctx) => {
    const a = floatTensor(ctx, 0);
    if (a.dims.length !== 2) ctx.fail(`A ${formatDims(a.dims)} must be a matrix`, "SHAPE_MISMATCH");
    const transA = ctx.attr.int("transA", 0) === 1, transB = ctx.attr.int("transB", 0) === 1;
    const alpha = ctx.attr.float("alpha", 1), beta = ctx.attr.float("beta", 1);
    const b = ctx.constant(1);
    if (b && b.isFloat && !transA && b.dims.length === 2) {
      // A·op(B) = A·Wᵀ with W = α·op(B)ᵀ [outputs, K]: a FullyConnected, C folded into its bias
      // when C is one row.
      const [r, k] = b.dims;
      const outputs = transB ? r : k;
      const inner = transB ? k : r;
      const w = new Float32Array(outputs * inner);
      for (let o = 0; o < outputs; o++) {
        for (let i = 0; i < inner; i++) {
          w[o * inner + i] = alpha * b.values[transB ? o * k + i : i * k + o];
        }
      }
      const c = ctx.constant(2);
      const row = c && c.isFloat &&
        (c.size === 1 ||
          (c.size === outputs && c.dims.at(-1) === outputs &&
            c.dims.slice(0, -1).every((d) => d === 1)));
      const bias = row
        ? Float32Array.from({ length: outputs }, (_, o) => beta * c!.values[c!.size === 1 ? 0 : o])
        : undefined;
      const y = ctx.add("FullyConnected", [a], { outputs, axis: 1, weights: w, bias }).output(0);
      return row ? y : addScaledC(ctx, y, beta);
    }
    const bt = b ? ctx.materialize(b, ctx.node.inputs[1]) : floatTensor(ctx, 1);
    let y = ctx.add("MatrixMultiply", [a, bt], { transposeA: transA, transposeB: transB }).output(
      0,
    );
    if (alpha !== 1) {
      y = ctx.add("Scale", [y], { mode: "uniform", scale: [alpha] }, "alpha").output(0);
    }
    return addScaledC(ctx, y, beta);
  },
});

registerOp("MatMul", {
  import: (ctx) => {
    let a = floatTensor(ctx, 0);
    const bc = ctx.constant(1);
    const bDims: Dims = ctx.dims(1);
    // 1-D operands are a row (A) or a column (B) whose dim is dropped from the result.
    const aVector = a.dims.length === 1, bVector = bDims.length === 1;
    if (aVector) a = reshape(ctx, a, [1, a.dims[0]], "row");
    let y: Tensor;
    if (bc && bc.isFloat && bc.dims.length === 2 && a.dims.at(-1) !== N) {
      // x·B over the last dim: a FullyConnected with W = Bᵀ.
      const [k, n] = bc.dims;
      const w = new Float32Array(n * k);
      for (let o = 0; o < n; o++) for (let i = 0; i < k; i++) w[o * k + i] = bc.values[i * n + o];
      y = ctx.add("FullyConnected", [a], { outputs: n, axis: a.dims.length - 1, weights: w })
        .output(0);
    } else {
      let b = bc ? ctx.materialize(bc, ctx.node.inputs[1]) : floatTensor(ctx, 1);
      if (bVector) b = reshape(ctx, b, [b.dims[0], 1], "column");
      y = ctx.add("MatrixMultiply", [a, b], {}).output(0);
    }
    const out = [...y.dims];
    if (bVector) out.pop();
    if (aVector) out.splice(out.length - (bVector ? 1 : 2), 1);
    return reshape(ctx, y, out, "squeeze");
  },
});
