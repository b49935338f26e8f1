/**
 * Importers of Caffe's layers that route or reshape blobs: Input, Softmax, Concat, Dropout and
 * Split (aliases: no layer), Flatten and Reshape (a Kiln Shuffle).
 */
import { type Dim, type Dims, formatDims, N } from "../../dsl/ir/dims.ts";
import type { Tensor } from "../../dsl/ir/graph.ts";
import type { TextMessage } from "./text_format.ts";
import { caffeAxis, type ImportContext, registerImporter, single } from "./_registry.ts";

/**
 * A Caffe input shape as Kiln dims: the first dim becomes the symbolic batch N (as NvCaffeParser
 * treated it), so any batch up to the engine's maxBatchSize runs.
 */
export function inputDims(shape: readonly number[]): Dims {
  return shape.length === 0 ? [] : [N, ...shape.slice(1)];
}

registerImporter("Input", {
  kinds: [],
  import: (ctx) => {
    const shapes = (ctx.param("input_param").shape as TextMessage[]).map((s) => s.dim as number[]);
    const tops = ctx.layer.top;
    if (shapes.length !== 1 && shapes.length !== tops.length) {
      ctx.fail(
        `input_param has ${shapes.length} shapes for ${tops.length} tops (give 1 or ${tops.length})`,
      );
    }
    return tops.map((top, i) => {
      const shape = shapes[shapes.length === 1 ? 0 : i];
      ctx.note(`input "${top}" ${formatDims(shape)}: the first dim becomes the batch N`);
      return ctx.net.input(top, inputDims(shape));
    });
  },
});

registerImporter("Softmax", {
  kinds: ["SoftMax"],
  import: (ctx) => {
    const axis = caffeAxis(
      ctx,
      ctx.param("softmax_param").axis as number,
      ctx.inputs[0].dims.length,
    );
    return single(ctx, "SoftMax", { axis });
  },
});

registerImporter("Concat", {
  kinds: ["Concatenation"],
  import: (ctx) => {
    const p = ctx.param("concat_param");
    // concat_dim is the deprecated spelling of axis.
    const raw = ctx.given("concat_param", "axis") || !ctx.given("concat_param", "concat_dim")
      ? p.axis as number
      : p.concat_dim as number;
    const axis = caffeAxis(ctx, raw, ctx.inputs[0].dims.length);
    if (ctx.inputs.length === 1) return ctx.inputs[0];
    return single(ctx, "Concatenation", { axis });
  },
});

// Split copies its bottom to every top; Dropout is the identity at inference (Caffe's dropout
// scales by 1/(1 - ratio) while training, so inference needs no scaling).
registerImporter("Split", {
  kinds: [],
  import: (ctx) => ctx.layer.top.map(() => ctx.inputs[0]),
});
registerImporter("Dropout", { kinds: [], import: (ctx) => ctx.inputs[0] });

/** A Shuffle that reshapes `x` to `dims` (the batch N kept as 0, "copy"). */
function reshapeTo(ctx: ImportContext, x: Tensor, dims: readonly Dim[]): Tensor {
  const reshape = dims.map((d, i) => (d === N && i === 0 ? 0 : d));
  return ctx.add("Shuffle", [x], { reshape }).output(0);
}

function volumeOf(ctx: ImportContext, dims: readonly Dim[]): number {
  let v = 1;
  for (const d of dims) {
    if (d === N) ctx.fail(`cannot merge the batch dimension into other dims`);
    v *= d as number;
  }
  return v;
}

// Flatten: dims [axis, end_axis] become one.
registerImporter("Flatten", {
  kinds: ["Shuffle"],
  import: (ctx) => {
    const p = ctx.param("flatten_param");
    const d = ctx.inputs[0].dims;
    const a = caffeAxis(ctx, p.axis as number, d.length);
    const e = caffeAxis(ctx, p.end_axis as number, d.length, "end_axis");
    if (e < a) ctx.fail(`end_axis ${p.end_axis} comes before axis ${p.axis}`);
    const dims = [...d.slice(0, a), volumeOf(ctx, d.slice(a, e + 1)), ...d.slice(e + 1)];
    return reshapeTo(ctx, ctx.inputs[0], dims);
  },
});

/**
 * Reshape: dims [axis, axis + num_axes) are replaced by `shape` (0 copies the dim at that
 * position, one -1 is inferred). Where the new shape starts at the batch dim, its first entry
 * stands for the batch (NvCaffeParser's rule): it keeps N.
 */
registerImporter("Reshape", {
  kinds: ["Shuffle"],
  import: (ctx) => {
    const p = ctx.param("reshape_param");
    const d = ctx.inputs[0].dims;
    const shape = ((p.shape as TextMessage | undefined)?.dim ?? []) as number[];
    const rank = d.length;
    const axis = p.axis as number;
    const start = axis < 0 ? axis + rank + 1 : axis;
    if (start < 0 || start > rank) {
      ctx.fail(`reshape_param.axis ${axis} is out of range for rank ${rank}`);
    }
    const numAxes = p.num_axes as number;
    const end = numAxes === -1 ? rank : start + numAxes;
    if (numAxes < -1 || end > rank) {
      ctx.fail(`reshape_param.num_axes ${numAxes} does not fit rank ${rank}`);
    }
    const mid: Dim[] = shape.map((s, i) => {
      if (s === 0) {
        if (start + i >= rank) {
          ctx.fail(`shape entry ${i} is 0 (copy) but the input has no dim ${start + i}`);
        }
        return d[start + i];
      }
      if (s < -1) {
        ctx.fail(`shape entry ${i} is ${s}; entries are positive, 0 (copy) or -1 (infer)`);
      }
      return s;
    });
    if (start === 0 && d[0] === N && mid.length > 0) {
      if (mid[0] !== N) ctx.note(`shape entry 0 (${mid[0]}) stands for the batch: kept as N`);
      mid[0] = N;
    }
    const dims: Dim[] = [...d.slice(0, start), ...mid, ...d.slice(end)];
    if (dims.filter((v) => v === -1).length > 1) ctx.fail(`shape has more than one -1`);
    const have = volumeOf(ctx, d.filter((v) => v !== N));
    const known = dims.reduce<number>((v, x) => (x === N || x === -1 ? v : v * (x as number)), 1);
    const inferred = dims.indexOf(-1);
    if (inferred >= 0) {
      if (known === 0 || have % known !== 0) {
        ctx.fail(
          `cannot infer the -1 of ${formatDims(dims)} from ${formatDims(d)}`,
          "SHAPE_MISMATCH",
        );
      }
      dims[inferred] = have / known;
    } else if (known !== have) {
      ctx.fail(
        `${formatDims(dims)} does not hold the ${have} elements of ${formatDims(d)}`,
        "SHAPE_MISMATCH",
      );
    }
    return reshapeTo(ctx, ctx.inputs[0], dims);
  },
});
