import { z } from "zod";
import { type Dim, formatDims, N, normalizeAxis } from "../ir/dims.ts";
import { defineLayer, shapeError, type TensorHandle } from "./_define.ts";

const attrs = z.object({
  /** The axis of `data` that the indices select along. Negative counts from the end. */
  axis: z.number().int().default(0),
});

/**
 * Gather (ONNX and TensorRT's default mode): picks slices of `data` along `axis` by the int32
 * `indices`; output dims = data[:axis] + indices + data[axis+1:]. A negative index counts from
 * the end; an index out of range stops the run with an error naming it.
 *
 * An embedding lookup: data = Constant [vocab, E], indices [N, 1] → [N, 1, E].
 */
export const Gather = defineLayer({
  kind: "Gather",
  summary: "selects slices along an axis by int32 indices",
  attrs,
  inputs: { min: 2, max: 2 },
  inputDTypes: [["float32", "int32"], ["int32"]],
  inferShape: ({ inputs, attrs }) => {
    const [data, indices] = inputs;
    const axis = normalizeAxis(attrs.axis, data.dims.length);
    if (axis < 0) {
      shapeError(`axis ${attrs.axis} is out of range for data of rank ${data.dims.length}`);
    }
    if (data.dims[axis] === N) {
      shapeError(`cannot gather along axis ${axis}: it is the symbolic batch dimension N`);
    }
    const dims: Dim[] = [
      ...data.dims.slice(0, axis),
      ...indices.dims,
      ...data.dims.slice(axis + 1),
    ];
    if (dims.some((d, i) => d === N && i !== 0)) {
      shapeError(
        `the output ${formatDims(dims)} would hold the symbolic batch N away from its first dim ` +
          `(batched indices need unbatched data and axis 0; batched data needs unbatched indices)`,
      );
    }
    return [{ dims, dtype: data.dtype }];
  },
  fluent: {
    gather: (
      t: TensorHandle,
      indices: TensorHandle,
      { name, ...args }: z.input<typeof attrs> & { name?: string } = {},
    ) => ({ inputs: [t, indices], attrs: args, name }),
  },
});
