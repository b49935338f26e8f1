/**
 * ONNX ops over axes: ReduceMean/Sum/Max/Min/Prod, Softmax and LogSoftmax (both opset rules:
 * before 13 the input is coerced to 2-D at `axis`, from 13 on one axis), TopK, ArgMax, ArgMin.
 */
import { type Dim, formatDims, N } from "../../dsl/ir/dims.ts";
import { ConstTensor, reduceConst, type ReduceKind } from "./_const.ts";
import { floatTensor } from "./_ops_math.ts";
import { axesOf, axisOf, type ImportContext, intsFrom, registerOp, reshape } from "./_registry.ts";

/** ReduceSum took its axes as an input from opset 13; the other reductions from 18. */
const AXES_INPUT_SINCE: Record<string, number> = {
  ReduceSum: 13,
  ReduceMean: 18,
  ReduceMax: 18,
  ReduceMin: 18,
  ReduceProd: 18,
};

/** The reduced axes (normalized), or [] for "reduce nothing" (noop_with_empty_axes). */
function reduceAxes(ctx: ImportContext, rank: number): number[] {
  const axes = intsFrom(ctx, "axes", 1, AXES_INPUT_SINCE[ctx.node.opType]);
  if (axes === undefined || axes.length === 0) {
    if (ctx.attr.int("noop_with_empty_axes", 0) === 1) return [];
    return Array.from({ length: rank }, (_, i) => i);
  }
  return axesOf(ctx, axes, rank);
}

function reduction(kind: ReduceKind) {
  return {
    fold: (ctx: ImportContext) => {
      const c = ctx.constInput(0, "input 0");
      const axes = reduceAxes(ctx, c.dims.length);
      if (!axes.length) return [c];
      return [reduceConst(c, axes, ctx.attr.int("keepdims", 1) === 1, kind)];
    },
    import: (ctx: ImportContext) => {
      const x = ctx.tensor(0);
      const axes = reduceAxes(ctx, x.dims.length);
      if (!axes.length) return x;
      if (axes.some((a) => x.dims[a] === N)) {
        ctx.fail(`reducing over the symbolic batch N (axes [${axes}] of ${formatDims(x.dims)})`);
      }
      if (x.dtype !== "float32" && (x.dtype !== "int32" || kind === "avg")) {
        ctx.fail(`Kiln's Reduce ${kind} does not take ${x.dtype} inputs`);
      }
      const keepDims = ctx.attr.int("keepdims", 1) === 1;
      return ctx.add("Reduce", [x], { op: kind, axes, keepDims }).output(0);
    },
  };
}

registerOp("ReduceSum", reduction("sum"));
registerOp("ReduceMean", reduction("avg"));
registerOp("ReduceMax", reduction("max"));
registerOp("ReduceMin", reduction("min"));
registerOp("ReduceProd", reduction("prod"));

/**
 * Softmax and LogSoftmax. Opset 13+: over one axis (default −1). Before: the input is seen as
 * a matrix [d0·…·d(axis−1), d(axis)·…] (default axis 1) and each row is normalized, which is a
 * softmax over all the dims from `axis` on.
 */
function softmax(log: boolean) {
  return {
    import: (ctx: ImportContext) => {
      const x = floatTensor(ctx, 0);
      const rank = x.dims.length;
      if (rank === 0) ctx.fail("the input is a scalar", "SHAPE_MISMATCH");
      if (ctx.opset >= 13) {
        const axis = axisOf(ctx, ctx.attr.int("axis", -1), rank);
        if (x.dims[axis] === N) ctx.fail(`axis ${axis} is the symbolic batch N`);
        return ctx.add("SoftMax", [x], { axis, log }).output(0);
      }
      let axis = ctx.attr.int("axis", 1);
      if (axis < 0) axis += rank;
      if (!(axis >= 0 && axis <= rank)) {
        ctx.fail(
          `axis ${ctx.attr.int("axis")} is out of range for rank ${rank}`,
          "INVALID_ATTRIBUTE",
        );
      }
      if (axis === rank) {
        // Rows of one element each: softmax 1, log-softmax 0.
        return ctx.add("Scale", [x], { mode: "uniform", scale: [0], shift: [log ? 0 : 1] }).output(
          0,
        );
      }
      if (axis === rank - 1) return ctx.add("SoftMax", [x], { axis, log }).output(0);
      if (x.dims.slice(axis).some((d) => d === N)) {
        ctx.fail(`axis ${axis} covers the symbolic batch N`);
      }
      const inner = (x.dims.slice(axis) as number[]).reduce((a, b) => a * b, 1);
      const flat: Dim[] = [...x.dims.slice(0, axis), inner];
      const y = ctx.add("SoftMax", [reshape(ctx, x, flat, "rows")], { axis, log }, "rows").output(
        0,
      );
      return reshape(ctx, y, x.dims, "back");
    },
  };
}

registerOp("Softmax", softmax(false));
registerOp("LogSoftmax", softmax(true));

registerOp("TopK", {
  check: (attr, opset) => (opset < 10 && !attr.has("k") ? ['the "k" attribute is missing'] : []),
  import: (ctx) => {
    const x = ctx.tensor(0);
    const axis = axisOf(ctx, ctx.attr.int("axis", -1), x.dims.length);
    if (x.dims[axis] === N) ctx.fail(`axis ${axis} is the symbolic batch N`);
    let k: number;
    if (ctx.opset < 10) k = ctx.attr.int("k", 0);
    else {
      const kc = ctx.constInput(1, "K");
      if (kc.size !== 1 || kc.hasBatch) {
        ctx.fail(`K must hold one integer, got ${kc}`, "INVALID_ARGUMENT");
      }
      k = kc.values[0];
    }
    if (!(Number.isInteger(k) && k >= 1)) ctx.fail(`k = ${k}: Kiln has no empty tensors`);
    const op = ctx.opset >= 11 && ctx.attr.int("largest", 1) === 0 ? "min" : "max";
    if (x.dtype !== "float32" && x.dtype !== "int32") {
      ctx.fail(`Kiln's TopK does not take ${x.dtype}`);
    }
    const layer = ctx.add("TopK", [x], { op, k, axis });
    return [layer.output(0), layer.output(1)];
  },
});

function argBest(op: "max" | "min") {
  return {
    check: (attr: ImportContext["attr"]) =>
      attr.int("select_last_index", 0) === 1
        ? ["select_last_index=1 (Kiln's TopK keeps the first of equal values)"]
        : [],
    fold: (ctx: ImportContext) => {
      const c = ctx.constInput(0, "input 0");
      const axis = axisOf(ctx, ctx.attr.int("axis", 0), c.dims.length);
      const outer = c.dims.slice(0, axis).reduce((a, b) => a * b, 1);
      const len = c.dims[axis];
      const inner = c.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
      const out = new Float64Array(outer * inner);
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          let best = 0;
          for (let j = 1; j < len; j++) {
            const v = c.values[(o * len + j) * inner + i],
              b = c.values[(o * len + best) * inner + i];
            if (op === "max" ? v > b : v < b) best = j;
          }
          out[o * inner + i] = best;
        }
      }
      const keep = ctx.attr.int("keepdims", 1) === 1;
      const dims = c.dims.flatMap((d, i) => (i === axis ? (keep ? [1] : []) : [d]));
      return [ConstTensor.of(7, dims, out)];
    },
    import: (ctx: ImportContext) => {
      const x = ctx.tensor(0);
      const axis = axisOf(ctx, ctx.attr.int("axis", 0), x.dims.length);
      if (x.dims[axis] === N) ctx.fail(`axis ${axis} is the symbolic batch N`);
      if (x.dtype !== "float32" && x.dtype !== "int32") {
        ctx.fail(`Kiln's TopK does not take ${x.dtype}`);
      }
      const idx = ctx.add("TopK", [x], { op, k: 1, axis }).output(1);
      if (ctx.attr.int("keepdims", 1) === 1) return idx;
      return reshape(ctx, idx, x.dims.filter((_, i) => i !== axis), "squeeze");
    },
  };
}

registerOp("ArgMax", argBest("max"));
registerOp("ArgMin", argBest("min"));
