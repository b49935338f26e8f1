/**
 * Reduce (TensorRT IReduceLayer): sum, product, max, min or mean over a set of axes, keeping
 * them as size 1 (`keepDims`) or dropping them. Reducing every axis of an unbatched tensor
 * without `keepDims` gives a scalar (dims []).
 *
 * float32 accumulates in double precision; int32 (sum, prod, max, min) wraps on overflow, as
 * 32-bit integer arithmetic does. max and min propagate NaN.
 */
import { z } from "zod";
import { type Dim, formatDims, N, normalizeAxis } from "../ir/dims.ts";
import { defineLayer, shapeError, type TensorHandle } from "./_define.ts";

export const REDUCE_OPS = ["sum", "prod", "max", "min", "avg"] as const;
export type ReduceOp = typeof REDUCE_OPS[number];

const attrs = z.object({
  op: z.enum(REDUCE_OPS),
  /** The axes to reduce; negative counts from the end. */
  axes: z.array(z.number().int()).min(1).refine(
    (a) => new Set(a).size === a.length,
    "axes must not repeat",
  ),
  /** Keep reduced axes as size 1 (true) or remove them (false). */
  keepDims: z.boolean().default(false),
});

export type ReduceAttrs = z.output<typeof attrs>;

/** The reduced axes, normalized and sorted, or a shape error naming the offending axis. */
export function reduceAxes(dims: readonly Dim[], axes: readonly number[]): number[] {
  const seen = new Set<number>();
  for (const axis of axes) {
    const a = normalizeAxis(axis, dims.length);
    if (a < 0) {
      shapeError(`axis ${axis} is out of range for ${formatDims(dims)} (rank ${dims.length})`);
    }
    if (dims[a] === N) shapeError(`axis ${axis} is the symbolic batch dimension N`);
    if (seen.has(a)) shapeError(`axes ${JSON.stringify(axes)} name axis ${a} twice`);
    seen.add(a);
  }
  return [...seen].sort((a, b) => a - b);
}

/** Accepts one axis or a list of them (shortcuts only; the attribute is always a list). */
const asAxes = (axes: number | readonly number[]) => (typeof axes === "number" ? [axes] : axes);

const shortcut = (op: ReduceOp) =>
(
  t: TensorHandle,
  axes: number | readonly number[],
  keepDims = false,
) => ({ inputs: [t], attrs: { op, axes: asAxes(axes), keepDims } });

export const Reduce = defineLayer({
  kind: "Reduce",
  summary: "sum, prod, max, min or average over axes, keeping or dropping them",
  attrs,
  inputs: { min: 1, max: 1 },
  inputDTypes: [["float32", "int32"]],
  inferShape: ({ inputs, attrs }) => {
    const { dims, dtype } = inputs[0];
    if (dtype === "int32" && attrs.op === "avg") {
      shapeError("avg needs a float32 input; int32 supports sum, prod, max and min");
    }
    const reduced = new Set(reduceAxes(dims, attrs.axes));
    const out: Dim[] = [];
    dims.forEach((d, i) => {
      if (!reduced.has(i)) out.push(d);
      else if (attrs.keepDims) out.push(1);
    });
    return [{ dims: out, dtype }];
  },
  fluent: {
    reduce: (t: TensorHandle, args: z.input<typeof attrs>) => ({ inputs: [t], attrs: args }),
    reduceSum: shortcut("sum"),
    reduceMean: shortcut("avg"),
    reduceMax: shortcut("max"),
  },
});
