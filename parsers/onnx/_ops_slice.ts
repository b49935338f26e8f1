/**
 * ONNX ops that cut, join, pick and repeat: Concat, Split, Slice, Gather, Pad, Tile, Expand. Contiguous ranges
 * become Padding layers with negative pads (crops); strided or reversed ranges become Gathers of
 * constant indices. Constant inputs fold on the host.
 */
import { type Dim, type Dims, formatDims, N } from "../../dsl/ir/dims.ts";
import type { Tensor } from "../../dsl/ir/graph.ts";
import { concatConst, ConstTensor, reshapeConst, takeConst } from "./_const.ts";
import { MAX_TENSOR_ELEMENTS } from "./tensor.ts";
import {
  axisOf,
  type ImportContext,
  intsFrom,
  type OnnxValue,
  registerOp,
  reshape,
} from "./_registry.ts";

registerOp("Concat", {
  check: (attr) => (attr.has("axis") ? [] : ['the "axis" attribute is missing']),
  fold: (ctx) => {
    const parts = givenInputs(ctx).map((i) => ctx.constant(i)!);
    const axis = axisOf(ctx, ctx.attr.int("axis", 0), parts[0].dims.length);
    checkConcat(ctx, parts.map((p) => p.dims), axis);
    return [concatConst(parts, axis)];
  },
  import: (ctx) => {
    const ins = givenInputs(ctx);
    if (ins.length === 1) return ctx.value(ins[0]);
    const axis = axisOf(ctx, ctx.attr.int("axis", 0), ctx.dims(ins[0]).length);
    return ctx.add("Concatenation", ins.map((i) => ctx.tensor(i)), { axis }).output(0);
  },
});

function givenInputs(ctx: ImportContext): number[] {
  const ins = ctx.node.inputs.map((_, i) => i).filter((i) => ctx.has(i));
  if (!ins.length) ctx.fail("needs at least one input", "INVALID_NETWORK");
  return ins;
}

function checkConcat(ctx: ImportContext, shapes: Dims[], axis: number): void {
  const first = shapes[0];
  for (const s of shapes) {
    if (s.length !== first.length || s.some((d, i) => i !== axis && d !== first[i])) {
      ctx.fail(
        `inputs ${shapes.map(formatDims).join(", ")} differ in more than axis ${axis}`,
        "SHAPE_MISMATCH",
      );
    }
  }
}

/** One [start, end) range along an axis (step 1), or explicit indices (any step). */
type Pick = { axis: number; start: number; end: number } | { axis: number; indices: number[] };

/** A value cut to `picks`, in order: constants on the host, tensors with Padding and Gather. */
function cut(ctx: ImportContext, v: OnnxValue, picks: Pick[], suffix: string): OnnxValue {
  const dims = v.dims;
  for (const p of picks) {
    const len = "indices" in p ? p.indices.length : p.end - p.start;
    if (len <= 0) {
      ctx.fail(`the result along axis ${p.axis} would be empty; Kiln has no empty tensors`);
    }
    if (dims[p.axis] === N) ctx.fail(`cannot cut along axis ${p.axis}: it is the symbolic batch N`);
  }
  if (v instanceof ConstTensor) {
    let c = v;
    for (const p of picks) {
      const idx = "indices" in p ? p.indices : range(p.start, p.end);
      c = takeConst(c, p.axis, idx);
    }
    return c;
  }
  let t: Tensor = v;
  const ranges = picks.filter((p): p is Extract<Pick, { start: number }> => "start" in p);
  const full = (p: { axis: number; start: number; end: number }) =>
    p.start === 0 && p.end === dims[p.axis];
  const crops = ranges.filter((p) => !full(p));
  if (crops.length) {
    // Padding aligns its pads to the last dims: cover the dims from the first cropped axis.
    const from = Math.min(...crops.map((p) => p.axis));
    const pre = new Array(dims.length - from).fill(0);
    const post = new Array(dims.length - from).fill(0);
    for (const p of crops) {
      pre[p.axis - from] = -p.start;
      post[p.axis - from] = -((dims[p.axis] as number) - p.end);
    }
    t = ctx.add("Padding", [t], { pre, post }, suffix).output(0);
  }
  for (const p of picks) {
    if (!("indices" in p)) continue;
    const idx = ctx.materialize(
      ConstTensor.of(6, [p.indices.length], p.indices),
      `${ctx.node.name}/indices`,
    );
    t = ctx.add("Gather", [t, idx], { axis: p.axis }, `${suffix}${p.axis}`).output(0);
  }
  return t;
}

function range(start: number, end: number, step = 1): number[] {
  const out: number[] = [];
  for (let i = start; step > 0 ? i < end : i > end; i += step) out.push(i);
  return out;
}

registerOp("Split", {
  import: (ctx) => {
    const x = ctx.value(0);
    const dims = x.dims;
    const axis = axisOf(ctx, ctx.attr.int("axis", 0), dims.length);
    if (dims[axis] === N) ctx.fail(`cannot split along axis ${axis}: it is the symbolic batch N`);
    const len = dims[axis] as number;
    const outputs = ctx.node.outputs.length;
    let sizes = intsFrom(ctx, "split", 1, 13);
    if (sizes === undefined) {
      const n = ctx.opset >= 18 && ctx.attr.has("num_outputs")
        ? ctx.attr.int("num_outputs", 0)
        : outputs;
      if (!(n >= 1)) ctx.fail(`num_outputs ${n} must be positive`, "INVALID_ATTRIBUTE");
      // Equal parts; with num_outputs the last may be smaller (ceil-sized chunks).
      const chunk = Math.ceil(len / n);
      if (ctx.opset < 18 && len % n !== 0) {
        ctx.fail(
          `dim ${len} of axis ${axis} does not split into ${n} equal parts`,
          "INVALID_ARGUMENT",
        );
      }
      sizes = Array.from({ length: n }, (_, i) => Math.min(chunk, len - i * chunk));
    }
    if (sizes.length !== outputs || sizes.reduce((a, b) => a + b, 0) !== len) {
      ctx.fail(
        `split sizes [${sizes.join(", ")}] must be ${outputs} sizes adding up to ${len}`,
        "INVALID_ARGUMENT",
      );
    }
    let at = 0;
    return sizes.map((s, i) => {
      const v = cut(ctx, x, [{ axis, start: at, end: at + s }], `split${i}`);
      at += s;
      return v;
    });
  },
});

/** Slice's picks with ONNX's clamping rules (start/end clamped per step sign). */
function slicePicks(ctx: ImportContext, dims: Dims): Pick[] {
  const starts = intsFrom(ctx, "starts", 1, 10);
  const ends = intsFrom(ctx, "ends", 2, 10);
  if (!starts || !ends || starts.length !== ends.length) {
    ctx.fail("starts and ends must be given, of equal length", "INVALID_ARGUMENT");
  }
  const axes = intsFrom(ctx, "axes", 3, 10) ?? starts!.map((_, i) => i);
  const steps = (ctx.opset >= 10 ? intsFrom(ctx, "steps", 4, 10) : undefined) ??
    starts!.map(() => 1);
  if (axes.length !== starts!.length || steps.length !== starts!.length) {
    ctx.fail("starts, ends, axes and steps must have equal lengths", "INVALID_ARGUMENT");
  }
  const seen = new Set<number>();
  const picks: Pick[] = [];
  starts!.forEach((s0, k) => {
    const axis = axisOf(ctx, axes[k], dims.length);
    if (seen.has(axis)) ctx.fail(`axis ${axis} is sliced twice`, "INVALID_ARGUMENT");
    seen.add(axis);
    const step = steps[k];
    if (!Number.isInteger(step) || step === 0) {
      ctx.fail(`step ${step} must be a non-zero integer`, "INVALID_ARGUMENT");
    }
    const d = dims[axis];
    if (d === N) {
      // The whole batch, as written by exporters (0 to "infinity"), is no cut at all.
      if (step === 1 && s0 === 0 && ends![k] >= 2 ** 31 - 1) return;
      ctx.fail(`cannot slice axis ${axis}: it is the symbolic batch N`);
    }
    const len = d as number;
    let s = s0 < 0 ? s0 + len : s0, e = ends![k] < 0 ? ends![k] + len : ends![k];
    if (step > 0) {
      s = Math.min(Math.max(s, 0), len);
      e = Math.min(Math.max(e, 0), len);
    } else {
      s = Math.min(Math.max(s, 0), len - 1);
      e = Math.min(Math.max(e, -1), len - 1);
    }
    if (step === 1) picks.push({ axis, start: s, end: e });
    else picks.push({ axis, indices: range(s, e, step) });
  });
  return picks;
}

registerOp("Slice", {
  fold: (
    ctx,
  ) => [
    cut(ctx, ctx.constInput(0, "input 0"), slicePicks(ctx, ctx.dims(0)), "slice") as ConstTensor,
  ],
  import: (ctx) => cut(ctx, ctx.value(0), slicePicks(ctx, ctx.dims(0)), "slice"),
});

registerOp("Gather", {
  fold: (ctx) => {
    const data = ctx.constInput(0, "input 0"), indices = ctx.constInput(1, "input 1");
    const axis = axisOf(ctx, ctx.attr.int("axis", 0), data.dims.length);
    const picks = gatherIndices(ctx, indices, data.dims[axis]);
    const taken = takeConst(data, axis, picks);
    const dims = [...data.dims.slice(0, axis), ...indices.dims, ...data.dims.slice(axis + 1)];
    return [reshapeConst(taken, dims)];
  },
  import: (ctx) => {
    const dataDims = ctx.dims(0);
    const axis = axisOf(ctx, ctx.attr.int("axis", 0), dataDims.length);
    if (dataDims[axis] === N) {
      ctx.fail(`cannot gather along axis ${axis}: it is the symbolic batch N`);
    }
    const c = ctx.constant(1);
    let indices: Tensor;
    if (c) {
      const picks = gatherIndices(ctx, c, dataDims[axis] as number);
      indices = ctx.materialize(ConstTensor.of(6, c.dims, picks), ctx.node.inputs[1]);
    } else {
      indices = ctx.tensor(1);
      if (indices.dtype !== "int32") {
        ctx.fail(`indices are ${indices.dtype}; int32 or int64 expected`);
      }
    }
    return ctx.add("Gather", [ctx.tensor(0), indices], { axis }).output(0);
  },
});

/** Constant gather indices, negatives counted from the end, each checked against the axis. */
function gatherIndices(ctx: ImportContext, c: ConstTensor, len: Dim): number[] {
  if (c.isFloat || c.hasBatch) ctx.fail(`indices ${c} must be integers`, "INVALID_ARGUMENT");
  return c.list().map((i) => {
    const k = i < 0 ? i + (len as number) : i;
    if (!(k >= 0 && k < (len as number))) {
      ctx.fail(`index ${i} is out of range for an axis of ${len}`, "INVALID_ARGUMENT");
    }
    return k;
  });
}

registerOp("Pad", {
  check: (attr, opset) => {
    const mode = attr.string("mode", "constant");
    const out = ["constant", "reflect", "edge"].includes(mode) ? [] : [`mode "${mode}"`];
    if (opset < 11 && !attr.has("pads") && !attr.has("paddings")) {
      out.push('the "pads" attribute is missing');
    }
    return out;
  },
  import: (ctx) => {
    const x = ctx.tensor(0);
    const rank = x.dims.length;
    const mode = ctx.attr.string("mode", "constant");
    let pads: number[] | undefined, value = 0;
    if (ctx.opset < 11) {
      pads = ctx.attr.ints("pads") ?? ctx.attr.ints("paddings");
      value = ctx.attr.float("value", 0);
    } else {
      pads = intsFrom(ctx, "pads", 1, 11);
      if (ctx.has(2)) {
        const v = ctx.constInput(2, "constant_value");
        if (v.size !== 1 || v.hasBatch) {
          ctx.fail(`constant_value must be a scalar, got ${v}`, "INVALID_ARGUMENT");
        }
        value = v.values[0];
      }
    }
    const axes = ctx.opset >= 18 ? intsFrom(ctx, "axes", 3, 18) : undefined;
    const which = axes
      ? axes.map((a) => axisOf(ctx, a, rank))
      : Array.from({ length: rank }, (_, i) => i);
    if (!pads || pads.length !== 2 * which.length) {
      ctx.fail(
        `pads [${pads ?? ""}] must hold ${2 * which.length} values (begins, then ends)`,
        "INVALID_ARGUMENT",
      );
    }
    const pre = new Array(rank).fill(0), post = new Array(rank).fill(0);
    which.forEach((a, k) => {
      pre[a] = pads![k];
      post[a] = pads![k + which.length];
    });
    if (pre.every((p) => p === 0) && post.every((p) => p === 0)) return x;
    if (mode !== "constant") value = 0;
    return ctx.add("Padding", [x], { pre, post, mode, value }).output(0);
  },
});

/** Repeats of `v` along each axis by Gathers of constant indices (exact for every dtype). */
function repeat(
  ctx: ImportContext,
  v: OnnxValue,
  order: (axis: number, len: number, sizeOnly?: boolean) => { length: number } | undefined,
): OnnxValue {
  let out = v;
  // Indices are built before the layers that check sizes: bound the result first.
  let items = 1;
  v.dims.forEach((d, axis) => {
    if (d !== N) items *= order(axis, d, true)?.length ?? d;
  });
  if (items > MAX_TENSOR_ELEMENTS) {
    ctx.fail(`the result would hold more than ${MAX_TENSOR_ELEMENTS} elements`, "INVALID_ARGUMENT");
  }
  v.dims.forEach((d, axis) => {
    const idx = order(axis, d as number);
    if (!idx) return;
    if (d === N) ctx.fail(`cannot repeat along axis ${axis}: it is the symbolic batch N`);
    out = cut(ctx, out, [{ axis, indices: idx as number[] }], "repeat");
  });
  return out;
}

registerOp("Tile", {
  import: (ctx) => {
    const x = ctx.value(0);
    const repeats = intsFrom(ctx, "repeats", 1, 6)!;
    if (
      !repeats || repeats.length !== x.dims.length ||
      repeats.some((r) => !(Number.isSafeInteger(r) && r >= 1))
    ) {
      ctx.fail(
        `repeats [${repeats}] must hold ${x.dims.length} positive counts`,
        "INVALID_ARGUMENT",
      );
    }
    // Tiling an axis r times reads its indices 0..d−1, r times over.
    return repeat(
      ctx,
      x,
      (axis, len) =>
        repeats[axis] === 1 ? undefined : range(0, len * repeats[axis]).map((i) => i % len),
    );
  },
});

registerOp("Expand", {
  import: (ctx) => {
    let x = ctx.value(0);
    const shape = ctx.constInput(1, "shape");
    if (shape.hasBatch) ctx.fail("the target shape holds the symbolic batch N");
    const target = shape.list();
    if (target.length > x.dims.length) {
      // Numpy broadcasting aligns the trailing dims: prepend 1s.
      const dims = [...new Array(target.length - x.dims.length).fill(1), ...x.dims];
      if (x.dims[0] === N) {
        ctx.fail(
          `expanding ${
            formatDims(x.dims)
          } to rank ${target.length} would move the symbolic batch N`,
        );
      }
      x = x instanceof ConstTensor ? reshapeConst(x, dims) : reshape(ctx, x, dims, "rank");
    }
    const lead = x.dims.length - target.length;
    // A dim of 1 broadcast to t reads index 0, t times.
    return repeat(ctx, x, (axis, len, sizeOnly) => {
      const t = axis < lead ? 1 : target[axis - lead];
      if (t === 1 || t === len) return undefined;
      if (len !== 1 || !(Number.isSafeInteger(t) && t > 0)) {
        ctx.fail(`shape ${shape} does not broadcast with ${formatDims(x.dims)}`, "SHAPE_MISMATCH");
      }
      return sizeOnly ? { length: t } : new Array(t).fill(0);
    });
  },
});
