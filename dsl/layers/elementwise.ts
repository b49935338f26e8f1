import { z } from "zod";
import { broadcastDims, type Dim, formatDims } from "../ir/dims.ts";
import { defineLayer, shapeError, type TensorHandle } from "./_define.ts";

export const ELEMENTWISE_OPS = ["sum", "prod", "max", "min", "sub", "div", "pow"] as const;

const attrs = z.object({
  op: z.enum(ELEMENTWISE_OPS),
});

const binary = (op: typeof ELEMENTWISE_OPS[number]) => (t: TensorHandle, other: TensorHandle) => ({
  inputs: [t, other],
  attrs: { op },
});

/**
 * ElementWise: a binary operation with numpy broadcasting. More than two inputs are combined
 * left to right: ((a op b) op c) ...
 */
export const ElementWise = defineLayer({
  kind: "ElementWise",
  summary: "elementwise sum, prod, max, min, sub, div, pow with broadcasting",
  attrs,
  inputs: { min: 2, max: Infinity },
  inferShape: ({ inputs }) => {
    let dims: Dim[] = [...inputs[0].dims];
    for (let i = 1; i < inputs.length; i++) {
      const b = broadcastDims(dims, inputs[i].dims);
      if (!b) {
        shapeError(
          `inputs ${formatDims(dims)} and ${formatDims(inputs[i].dims)} do not broadcast`,
        );
      }
      dims = b;
    }
    return [{ dims, dtype: inputs[0].dtype }];
  },
  fluent: {
    add: binary("sum"),
    sub: binary("sub"),
    mul: binary("prod"),
    div: binary("div"),
    max: binary("max"),
    min: binary("min"),
    pow: binary("pow"),
  },
});
