/**
 * TopK (TensorRT ITopKLayer): the k largest (`max`) or smallest (`min`) elements along one
 * axis, sorted, with their indices.
 *
 * Outputs: 0 = values (the input's dtype), 1 = indices (int32), both with the axis resized to
 * k. Order is deterministic: best first, and equal values keep the lower index first. NaN ranks
 * above every number (as in PyTorch's topk): it comes first for `max` and last for `min`.
 */
import { z } from "zod";
import { type Dim, formatDims, N, normalizeAxis } from "../ir/dims.ts";
import { defineLayer, shapeError, type TensorHandle } from "./_define.ts";

export const TOPK_OPS = ["max", "min"] as const;
export type TopKOp = typeof TOPK_OPS[number];

const attrs = z.object({
  /** `max`: the k largest; `min`: the k smallest. */
  op: z.enum(TOPK_OPS),
  /** How many elements to keep; at most the length of the axis. */
  k: z.number().int().positive(),
  /** The axis to select along; negative counts from the end (-1, the default, is the last). */
  axis: z.number().int().default(-1),
});

export type TopKAttrs = z.output<typeof attrs>;

/** The axis TopK reads, normalized, or a shape error that says why it is not usable. */
export function topkAxis(dims: readonly Dim[], axis: number): number {
  if (dims.length === 0) shapeError("the input must have at least one dimension");
  const a = normalizeAxis(axis, dims.length);
  if (a < 0) {
    shapeError(`axis ${axis} is out of range for ${formatDims(dims)} (rank ${dims.length})`);
  }
  if (dims[a] === N) shapeError(`axis ${axis} is the symbolic batch dimension N`);
  return a;
}

/** A single-output-index shortcut: k = 1 along `axis`, returning the int32 indices. */
const argBest = (op: TopKOp) => (t: TensorHandle, axis = -1) => ({
  inputs: [t],
  attrs: { op, k: 1, axis },
  output: 1,
});

export const TopK = defineLayer({
  kind: "TopK",
  summary: "the k largest or smallest elements along an axis, sorted, with their int32 indices",
  attrs,
  inputs: { min: 1, max: 1 },
  inputDTypes: [["float32", "int32"]],
  inferShape: ({ inputs, attrs }) => {
    const dims = inputs[0].dims;
    const axis = topkAxis(dims, attrs.axis);
    const len = dims[axis] as number;
    if (attrs.k > len) {
      shapeError(`k = ${attrs.k} exceeds the length ${len} of axis ${attrs.axis}`);
    }
    const out = dims.map((d, i) => (i === axis ? attrs.k : d));
    return [
      { dims: out, dtype: inputs[0].dtype },
      { dims: out, dtype: "int32" },
    ];
  },
  fluent: {
    /** The values output; `layer.output(1)` (via addTopK) holds the indices. */
    topk: (t: TensorHandle, args: z.input<typeof attrs>) => ({ inputs: [t], attrs: args }),
    /** Index of the largest element along `axis` (last by default), int32, axis kept as 1. */
    argmax: argBest("max"),
    /** Index of the smallest element along `axis` (last by default), int32, axis kept as 1. */
    argmin: argBest("min"),
  },
});
