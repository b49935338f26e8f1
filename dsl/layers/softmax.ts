import { z } from "zod";
import { normalizeAxis } from "../ir/dims.ts";
import { defineLayer, shapeError, type TensorHandle } from "./_define.ts";

const attrs = z.object({
  /** The axis softmax normalizes over (TensorRT: the channel axis, 1). Negative counts from the end. */
  axis: z.number().int().default(1),
  /** Return log(softmax(x)) (ONNX LogSoftmax). */
  log: z.boolean().default(false),
});

/** SoftMax over one axis. */
export const SoftMax = defineLayer({
  kind: "SoftMax",
  summary: "softmax over one axis",
  attrs,
  inputs: { min: 1, max: 1 },
  inferShape: ({ inputs, attrs }) => {
    const d = inputs[0].dims;
    const axis = normalizeAxis(attrs.axis, d.length);
    if (axis < 0) {
      shapeError(
        `axis ${attrs.axis} is out of range for rank ${d.length} (allowed: ${-d.length}..${
          d.length - 1
        })`,
      );
    }
    if (axis === 0 && d[0] === "N") {
      shapeError(`axis ${attrs.axis} is the batch dimension; softmax over it is not supported`);
    }
    return [{ dims: d, dtype: inputs[0].dtype }];
  },
  fluent: {
    softmax: (t: TensorHandle, args: z.input<typeof attrs> = {}) => ({ inputs: [t], attrs: args }),
  },
});
