import { z } from "zod";
import { defineLayer } from "./_define.ts";

const attrs = z.object({
  /** The storage format written: full precision, half-rounded values, or INT8 steps of `scale`. */
  to: z.enum(["fp32", "fp16", "int8"]),
  /** The INT8 step (amax / 127) when `to` is "int8". */
  scale: z.number().positive().finite().optional(),
}).refine((a) => a.to !== "int8" || a.scale !== undefined, {
  message: "a reformat to int8 needs a scale",
  path: ["scale"],
});

/**
 * Reformat: converts a tensor between precisions (FP32 ↔ FP16 ↔ INT8). The builder inserts one
 * wherever a layer reads a tensor in another precision than its producer wrote, as TensorRT's
 * reformatting layers; networks do not add them by hand, so it has no fluent method.
 */
export const Reformat = defineLayer({
  kind: "Reformat",
  summary: "precision conversion inserted by the builder (quantize, dequantize, round to half)",
  attrs,
  inputs: { min: 1, max: 1 },
  inferShape: ({ inputs }) => [{ dims: inputs[0].dims, dtype: inputs[0].dtype }],
});
