import { z } from "zod";
import { KilnError } from "../../errors.ts";
import { type Dim, formatDims, N, normalizeAxis } from "../ir/dims.ts";
import { defineLayer, shapeError, type TensorHandle } from "./_define.ts";

const attrs = z.object({
  /** The axis to join along (TensorRT and Caffe: the channel axis, 1). Negative counts from the end. */
  axis: z.number().int().default(1),
});

/**
 * Concatenation: joins its inputs along one axis. All inputs share the dtype, the rank and every
 * dim but the axis; the output's axis is the sum of theirs.
 */
export const Concatenation = defineLayer({
  kind: "Concatenation",
  summary: "joins tensors along one axis",
  attrs,
  inputs: { min: 1, max: Infinity },
  inputDTypes: [["float32", "int32"]],
  inferShape: ({ inputs, attrs }) => {
    const first = inputs[0];
    const rank = first.dims.length;
    const axis = normalizeAxis(attrs.axis, rank);
    if (axis < 0) shapeError(`axis ${attrs.axis} is out of range for rank ${rank}`);
    let total = 0;
    inputs.forEach((t, i) => {
      if (t.dtype !== first.dtype) {
        shapeError(`input ${i} is ${t.dtype} but input 0 is ${first.dtype}; all must match`);
      }
      if (t.dims.length !== rank) {
        shapeError(
          `input ${i} ${formatDims(t.dims)} has rank ${t.dims.length}; input 0 has rank ${rank}`,
        );
      }
      t.dims.forEach((d, j) => {
        if (j !== axis && d !== first.dims[j]) {
          shapeError(
            `input ${i} ${formatDims(t.dims)} differs from input 0 ${
              formatDims(first.dims)
            } in dim ${j}; only the axis (${axis}) may differ`,
          );
        }
      });
      const len = t.dims[axis];
      if (len === N) {
        shapeError(
          `cannot concatenate along axis ${axis}: it is the symbolic batch dimension N`,
        );
      }
      total += len;
    });
    const dims: Dim[] = [...first.dims];
    dims[axis] = total;
    return [{ dims, dtype: first.dtype }];
  },
  fluent: {
    /** `t.concat([u, v], { axis })`: t first, then the others in order. */
    concat: (
      t: TensorHandle,
      others: TensorHandle[],
      { name, ...args }: z.input<typeof attrs> & { name?: string } = {},
    ) => {
      if (!Array.isArray(others)) {
        throw new KilnError(
          "INVALID_ARGUMENT",
          `concat expects an array of tensors to join after "${t.name}", got ${String(others)}`,
          { tensor: t.name },
        );
      }
      return { inputs: [t, ...others], attrs: args, name };
    },
  },
});
