import { z } from "zod";
import { DTYPES } from "../ir/dtype.ts";
import { defineLayer, type TensorHandle } from "./_define.ts";

const attrs = z.object({
  /** Output dtype; the layer converts when it differs from the input's (as TensorRT's identity). */
  dtype: z.enum(DTYPES as ["float32", "float16", "int8", "int32"]).optional(),
});

/** Identity: copies its input, optionally converting its dtype. */
export const Identity = defineLayer({
  kind: "Identity",
  summary: "copy, optionally converting the dtype",
  attrs,
  inputs: { min: 1, max: 1 },
  inputDTypes: [["float32", "float16", "int8", "int32"]],
  inferShape: (
    { inputs, attrs },
  ) => [{ dims: inputs[0].dims, dtype: attrs.dtype ?? inputs[0].dtype }],
  fluent: {
    identity: (t: TensorHandle) => ({ inputs: [t], attrs: {} }),
    cast: (t: TensorHandle, dtype: "float32" | "float16" | "int8" | "int32") => ({
      inputs: [t],
      attrs: { dtype },
    }),
  },
});
