/**
 * RaggedSoftMax (TensorRT IRaggedSoftMaxLayer): softmax over a prefix of each row whose length
 * is given per row at run time, as for sequences padded to a common length S.
 *
 * Inputs: scores [Z, S] or [N, Z, S] (float32) and bounds (int32) with one entry per row,
 * [Z, 1] or [N, Z, 1]. Row z's first bounds[z] elements get softmax over themselves; the rest
 * are 0 (a bound of 0 gives a row of zeros). A bound outside [0, S] is a run-time KilnError
 * naming the layer, since bounds are data.
 */
import { z } from "zod";
import { formatDims } from "../ir/dims.ts";
import { defineLayer, expectRank, shapeError, type TensorHandle } from "./_define.ts";

/**
 * No attributes; unknown ones are refused. (Typed as `{}` rather than zod's empty-object type,
 * whose index signature of `never` would forbid the `name` every `addX` call may pass.)
 */
const attrs: z.ZodType<Record<never, never>> = z.strictObject({});

export const RaggedSoftMax = defineLayer({
  kind: "RaggedSoftMax",
  summary: "softmax over the first bounds[z] elements of each row z; zeros past the bound",
  attrs,
  inputs: { min: 2, max: 2 },
  inputDTypes: [["float32"], ["int32"]],
  inferShape: (ctx) => {
    const scores = expectRank(ctx, 0, 2, 3);
    const bounds = ctx.inputs[1].dims;
    const want = [...scores.slice(0, -1), 1];
    if (bounds.length !== want.length || bounds.some((d, i) => d !== want[i])) {
      shapeError(
        `bounds must hold one entry per row of the scores ${formatDims(scores)}: expected ${
          formatDims(want)
        }, got ${formatDims(bounds)}`,
      );
    }
    return [{ dims: scores, dtype: "float32" }];
  },
  fluent: {
    /** Softmax of each row over its first `bounds[row]` elements (int32 [.., Z, 1]). */
    raggedSoftmax: (t: TensorHandle, bounds: TensorHandle) => ({
      inputs: [t, bounds],
      attrs: {},
    }),
  },
});
