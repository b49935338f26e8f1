import { z } from "zod";
import { defineLayer } from "./_define.ts";

const attrs = z.object({
  /** The output's dims: concrete, positive (a constant has no batch); [] is a scalar. */
  dims: z.array(z.number().int().positive()),
  dtype: z.enum(["float32", "int32"]).default("float32"),
});

/**
 * Constant: a tensor whose values are the layer's weights (TensorRT's IConstantLayer), e.g. an
 * embedding table read by Gather or a matrix for MatrixMultiply. It takes no inputs:
 *
 *   net.addConstant([], { dims: [65, 32], values: table })
 *   net.addConstant([], { dims: [3], dtype: "int32", values: { dtype: "int32", values: [0, 2, 1] } })
 */
export const Constant = defineLayer({
  kind: "Constant",
  summary: "a tensor of fixed values (the layer's weights)",
  attrs,
  inputs: { min: 0, max: 0 },
  weightArgs: ["values"],
  weights: ({ attrs }) => ({ values: { dims: attrs.dims, dtypes: [attrs.dtype] } }),
  inferShape: ({ attrs }) => [{ dims: [...attrs.dims], dtype: attrs.dtype }],
});
