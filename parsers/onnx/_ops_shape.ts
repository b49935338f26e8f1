/**
 * ONNX ops that give tensors their shape or type: Constant, ConstantOfShape, Shape, Size,
 * Identity, Dropout, Cast, Reshape, Flatten, Transpose, Squeeze and Unsqueeze. Shape arithmetic
 * folds at import (Shape of a tensor is a constant: its dims are known, N aside), so Reshape
 * targets computed from shapes become plain Shuffles.
 */
import { type Dim, type Dims, formatDims, N } from "../../dsl/ir/dims.ts";
import { castConst, ConstTensor, reshapeConst, transposeConst } from "./_const.ts";
import {
  axesOf,
  type ImportContext,
  intsFrom,
  registerOp,
  reshape,
  transpose,
} from "./_registry.ts";
import { BOOL, dataTypeName, FLOAT, INT64, kilnDTypeOf, ONNX_DATA_TYPES } from "./tensor.ts";

/** The symbolic batch inside an integer constant (see _const.ts). */
const BATCH = NaN;

registerOp("Constant", {
  check: (attr) => {
    const known = ["value", "value_float", "value_floats", "value_int", "value_ints"];
    const given = [...attr.node.attrs.keys()];
    const other = given.filter((k) => !known.includes(k));
    if (other.length) {
      return [`attribute ${other.join(", ")} is not supported (sparse or string constants)`];
    }
    if (given.length !== 1) return [`exactly one value attribute expected, got ${given.length}`];
    return [];
  },
  import: (ctx) => {
    const a = ctx.attr;
    const t = a.tensor("value");
    if (t) return t;
    const f = a.float("value_float");
    if (f !== undefined) return ConstTensor.of(FLOAT, [], [f]);
    const fs = a.floats("value_floats");
    if (fs) return ConstTensor.of(FLOAT, [fs.length], fs);
    const i = a.int("value_int");
    if (i !== undefined) return ConstTensor.of(INT64, [], [i]);
    return ConstTensor.int64(a.ints("value_ints") ?? []);
  },
});

registerOp("ConstantOfShape", {
  import: (ctx) => {
    const shape = ctx.constInput(0, "shape");
    if (shape.hasBatch) {
      ctx.fail(`the shape ${shape} holds the symbolic batch N: a constant's dims must be known`);
    }
    const dims = shape.list();
    const value = ctx.attr.tensor("value") ?? ConstTensor.of(FLOAT, [1], [0]);
    if (value.size !== 1) {
      ctx.fail(`"value" must hold one element, got ${value}`, "INVALID_ATTRIBUTE");
    }
    const count = dims.reduce((a, b) => a * b, 1);
    if (!dims.every((d) => Number.isSafeInteger(d) && d >= 0) || count > 2 ** 28) {
      ctx.fail(`shape ${shape} is not a valid shape of at most 2^28 elements`, "INVALID_ARGUMENT");
    }
    const values = value.isFloat ? new Float32Array(count) : new Float64Array(count);
    values.fill(value.values[0]);
    return new ConstTensor(value.dataType, dims, values);
  },
});

/** Shape (opset 15's start/end slice the dims): a constant, the batch as N. */
registerOp("Shape", {
  import: (ctx) => {
    const dims = ctx.dims(0);
    const rank = dims.length;
    const clamp = (v: number) => Math.min(rank, Math.max(0, v < 0 ? v + rank : v));
    const start = ctx.opset >= 15 ? clamp(ctx.attr.int("start", 0)) : 0;
    const end = ctx.opset >= 15 ? clamp(ctx.attr.int("end", rank)) : rank;
    return ConstTensor.int64(
      dims.slice(start, Math.max(start, end)).map((d) => (d === N ? BATCH : d)),
    );
  },
});

registerOp("Size", {
  import: (ctx) => {
    const dims = ctx.dims(0);
    if (dims[0] === N) ctx.fail("the size of a batched tensor depends on the batch N");
    return ConstTensor.of(INT64, [], [(dims as number[]).reduce((a, b) => a * b, 1)]);
  },
});

registerOp("Identity", { import: (ctx) => ctx.value(0) });

registerOp("Dropout", {
  check: (
    attr,
    opset,
  ) => (opset < 7 && attr.int("is_test", 0) === 0
    ? ["is_test=0 asks for training-mode dropout"]
    : []),
  import: (ctx) => {
    if (ctx.opset >= 12 && ctx.has(2)) {
      const training = ctx.constInput(2, "training_mode");
      if (training.values[0]) ctx.fail("training_mode=true: Kiln runs inference only");
    }
    const x = ctx.value(0);
    // Inference: the output is the input and the mask is all true.
    const dims = x.dims;
    if (ctx.node.outputs.length < 2 || ctx.node.outputs[1] === "") return x;
    if (dims.some((d) => d === N)) ctx.fail("the mask of a batched tensor has no constant shape");
    const count = (dims as number[]).reduce((a, b) => a * b, 1);
    return [x, ConstTensor.of(BOOL, dims as number[], new Float64Array(count).fill(1))];
  },
});

registerOp("Cast", {
  check: (attr) => (attr.has("to") ? [] : ['the "to" attribute is missing']),
  fold: (ctx) => [castConst(ctx.constInput(0, "input 0"), castTarget(ctx))],
  import: (ctx) => {
    const to = castTarget(ctx);
    const x = ctx.tensor(0);
    const dtype = kilnDTypeOf(to);
    if (!dtype) ctx.fail(`casting a run-time tensor to ${dataTypeName(to)}: Kiln has no such type`);
    if (dtype === x.dtype) return x;
    let src = x;
    if (
      (x.dtype === "float32" || x.dtype === "float16") && (dtype === "int32" || dtype === "int8")
    ) {
      // ONNX truncates toward zero; Kiln's Identity rounds to nearest: truncate first.
      if (x.dtype === "float16") {
        src = ctx.add("Identity", [x], { dtype: "float32" }, "float").output(0);
      }
      const mag = ctx.add("Unary", [src], { op: "abs" }, "abs").output(0);
      const floor = ctx.add("Unary", [mag], { op: "floor" }, "floor").output(0);
      const sign = ctx.add("Unary", [src], { op: "sign" }, "sign").output(0);
      src = ctx.add("ElementWise", [floor, sign], { op: "prod" }, "trunc").output(0);
    }
    return ctx.add("Identity", [src], { dtype }).output(0);
  },
});

function castTarget(ctx: ImportContext): number {
  const to = ctx.attr.int("to", 0);
  const info = ONNX_DATA_TYPES[to];
  if (!info || info.kind === "other") ctx.fail(`cannot cast to ${dataTypeName(to)}`);
  return to;
}

/**
 * Reshape's target dims: 0 copies the input's dim (unless allowzero), -1 is inferred, and N
 * (from a Shape of a batched tensor) must stay first; a batched input's first output dim must
 * be the batch, copied, inferred or named.
 */
function reshapeTarget(ctx: ImportContext, input: Dims, shape: ConstTensor): Dim[] {
  const spec = shape.list();
  const allowZero = ctx.opset >= 14 && ctx.attr.int("allowzero", 0) === 1;
  const batched = input[0] === N;
  const out: (Dim | -1)[] = spec.map((s, i) => {
    if (Number.isNaN(s)) return N;
    if (s === 0 && !allowZero) {
      if (i >= input.length) {
        ctx.fail(
          `shape ${shape}: entry ${i} copies a dim the input ${formatDims(input)} does not have`,
          "INVALID_ARGUMENT",
        );
      }
      return input[i];
    }
    if (s === 0) ctx.fail("allowzero: Kiln has no empty tensors");
    if (s === -1) return -1;
    if (!(Number.isSafeInteger(s) && s > 0)) {
      ctx.fail(`shape ${shape}: ${s} is not a dim`, "INVALID_ARGUMENT");
    }
    return s;
  });
  if (out.filter((d) => d === -1).length > 1) {
    ctx.fail(`shape ${shape} has more than one -1`, "INVALID_ARGUMENT");
  }
  if (out.some((d, i) => d === N && i > 0)) {
    ctx.fail(`shape ${shape} puts the symbolic batch N away from the first dim`);
  }
  const have = input.reduce<number>((v, d) => (d === N ? v : v * d), 1);
  if (batched && out[0] === -1) out[0] = N;
  const known = out.reduce<number>((v, d) => (d === N || d === -1 ? v : v * (d as number)), 1);
  const inferred = out.indexOf(-1);
  if (batched !== (out[0] === N)) {
    ctx.fail(
      `reshaping ${formatDims(input)} to ${shape} would ${
        batched ? "fold the symbolic batch N into other dims" : "create a batch dim"
      }; Kiln keeps N as the first dim`,
    );
  }
  if (inferred >= 0) {
    if (known === 0 || have % known !== 0) {
      ctx.fail(
        `shape ${shape}: -1 cannot be inferred from ${formatDims(input)}`,
        "INVALID_ARGUMENT",
      );
    }
    out[inferred] = have / known;
  } else if (known !== have) {
    ctx.fail(
      `shape ${shape} holds ${known} elements${batched ? " per batch item" : ""}; the input ${
        formatDims(input)
      } has ${have}`,
      "INVALID_ARGUMENT",
    );
  }
  return out as Dim[];
}

registerOp("Reshape", {
  check: (_attr, opset) => (opset < 5 ? ["Reshape before opset 5"] : []),
  fold: (ctx) => {
    const x = ctx.constInput(0, "input 0");
    return [reshapeConst(x, reshapeTarget(ctx, x.dims, ctx.constInput(1, "shape")) as number[])];
  },
  import: (ctx) => {
    const dims = reshapeTarget(ctx, ctx.dims(0), ctx.constInput(1, "shape"));
    return reshape(ctx, ctx.tensor(0), dims, "reshape");
  },
});

/** Flatten: [d0·…·d(axis−1), d(axis)·…] (axis 0 gives [1, all]). */
function flattenDims(ctx: ImportContext, dims: Dims): Dim[] {
  const rank = dims.length;
  let axis = ctx.attr.int("axis", 1);
  if (axis < 0) axis += rank;
  if (!(axis >= 0 && axis <= rank)) {
    ctx.fail(`axis ${ctx.attr.int("axis")} is out of range for rank ${rank}`, "INVALID_ATTRIBUTE");
  }
  const prod = (ds: Dims) => ds.reduce<number>((a, d) => a * (d as number), 1);
  if (dims[0] === N) {
    if (axis !== 1) {
      ctx.fail(`flattening at axis ${axis} would fold the symbolic batch N into a dim`);
    }
    return [N, prod(dims.slice(1))];
  }
  return [prod(dims.slice(0, axis)), prod(dims.slice(axis))];
}

registerOp("Flatten", {
  fold: (
    ctx,
  ) => [reshapeConst(ctx.constInput(0, "input 0"), flattenDims(ctx, ctx.dims(0)) as number[])],
  import: (ctx) => reshape(ctx, ctx.tensor(0), flattenDims(ctx, ctx.dims(0)), "flatten"),
});

function permutation(ctx: ImportContext, rank: number): number[] {
  const perm = ctx.attr.ints("perm") ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const ok = perm.length === rank &&
    perm.every((p, i) => p >= 0 && p < rank && perm.indexOf(p) === i);
  if (!ok) {
    ctx.fail(`perm [${perm.join(", ")}] is not a permutation of ${rank} dims`, "INVALID_ATTRIBUTE");
  }
  return perm;
}

registerOp("Transpose", {
  fold: (
    ctx,
  ) => [transposeConst(ctx.constInput(0, "input 0"), permutation(ctx, ctx.dims(0).length))],
  import: (ctx) => {
    const x = ctx.tensor(0);
    return transpose(ctx, x, permutation(ctx, x.dims.length), "transpose");
  },
});

function squeezeDims(ctx: ImportContext, dims: Dims): Dim[] {
  const given = intsFrom(ctx, "axes", 1, 13);
  const axes = given === undefined
    ? dims.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0)
    : axesOf(ctx, given, dims.length);
  for (const a of axes) {
    if (dims[a] !== 1) {
      ctx.fail(
        `axis ${a} of ${formatDims(dims)} is not 1 and cannot be squeezed`,
        "INVALID_ARGUMENT",
      );
    }
  }
  return dims.filter((_, i) => !axes.includes(i));
}

function unsqueezeDims(ctx: ImportContext, dims: Dims): Dim[] {
  const given = intsFrom(ctx, "axes", 1, 13);
  if (given === undefined) ctx.fail("axes are required", "INVALID_ATTRIBUTE");
  const rank = dims.length + given!.length;
  const axes = axesOf(ctx, given!, rank);
  const out: Dim[] = [];
  let next = 0;
  for (let i = 0; i < rank; i++) out.push(axes.includes(i) ? 1 : dims[next++]);
  return out;
}

registerOp("Squeeze", {
  fold: (
    ctx,
  ) => [reshapeConst(ctx.constInput(0, "input 0"), squeezeDims(ctx, ctx.dims(0)) as number[])],
  import: (ctx) => reshape(ctx, ctx.tensor(0), squeezeDims(ctx, ctx.dims(0)), "squeeze"),
});

registerOp("Unsqueeze", {
  fold: (
    ctx,
  ) => [reshapeConst(ctx.constInput(0, "input 0"), unsqueezeDims(ctx, ctx.dims(0)) as number[])],
  import: (ctx) => reshape(ctx, ctx.tensor(0), unsqueezeDims(ctx, ctx.dims(0)), "unsqueeze"),
});

/**
 * DepthToSpace / SpaceToDepth as reshape → transpose → reshape over 6-D views of [N, C, H, W]
 * (ONNX's definitions; DepthToSpace's DCR and CRD modes differ in the channel split).
 */
function blockShuffle(ctx: ImportContext, toSpace: boolean) {
  const x = ctx.value(0);
  if (x.dims.length !== 4) {
    ctx.fail(`input ${formatDims(x.dims)} must be [N, C, H, W]`, "SHAPE_MISMATCH");
  }
  const b = ctx.attr.int("blocksize", 0);
  if (!(b >= 1)) ctx.fail(`blocksize ${b} must be positive`, "INVALID_ATTRIBUTE");
  const [n, c, h, w] = x.dims as [Dim, number, number, number];
  let view: Dim[], perm: number[], out: Dim[];
  if (toSpace) {
    if (c % (b * b) !== 0) {
      ctx.fail(`channels ${c} do not divide by blocksize² ${b * b}`, "SHAPE_MISMATCH");
    }
    const crd = ctx.attr.string("mode", "DCR") === "CRD";
    view = crd ? [n, c / (b * b), b, b, h, w] : [n, b, b, c / (b * b), h, w];
    perm = crd ? [0, 1, 4, 2, 5, 3] : [0, 3, 4, 1, 5, 2];
    out = [n, c / (b * b), h * b, w * b];
  } else {
    if (h % b !== 0 || w % b !== 0) {
      ctx.fail(`${h}x${w} does not divide by blocksize ${b}`, "SHAPE_MISMATCH");
    }
    view = [n, c, h / b, b, w / b, b];
    perm = [0, 3, 5, 1, 2, 4];
    out = [n, c * b * b, h / b, w / b];
  }
  if (x instanceof ConstTensor) {
    return reshapeConst(transposeConst(reshapeConst(x, view as number[]), perm), out as number[]);
  }
  const t = transpose(ctx, reshape(ctx, x, view, "view"), perm, "shuffle");
  return reshape(ctx, t, out, "out");
}

registerOp("DepthToSpace", {
  check: (attr) => {
    const mode = attr.string("mode", "DCR");
    return mode === "DCR" || mode === "CRD" ? [] : [`mode "${mode}"`];
  },
  import: (ctx) => blockShuffle(ctx, true),
});
registerOp("SpaceToDepth", { import: (ctx) => blockShuffle(ctx, false) });
