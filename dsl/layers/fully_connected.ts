import { z } from "zod";
import { isBatched } from "../ir/dims.ts";
import {
  type Args,
  defineLayer,
  num,
  type ShapeContext,
  shapeError,
  type TensorHandle,
} from "./_define.ts";
import { epilogueAttrs } from "./_epilogue.ts";
import { checkResidual } from "./convolution.ts";

const attrs = z.object({
  outputs: z.number().int().positive(),
  /** Dims from `axis` on are flattened into one input vector (TensorRT and Caffe: 1). */
  axis: z.number().int().nonnegative().default(1),
  ...epilogueAttrs,
});

type Attrs = z.output<typeof attrs>;

function inputVolume(ctx: ShapeContext<Attrs>): number {
  const d = ctx.inputs[0].dims;
  const axis = ctx.attrs.axis;
  const allowed = `allowed: ${isBatched(d) ? 1 : 0}..${d.length - 1}`;
  if (axis >= d.length) {
    shapeError(`axis ${axis} is out of range for rank ${d.length} (${allowed})`);
  }
  if (axis === 0 && isBatched(d)) {
    shapeError(`axis 0 would flatten the batch dimension (${allowed})`);
  }
  let v = 1;
  for (let i = axis; i < d.length; i++) v *= num(d[i], `dim ${i}`);
  return v;
}

/**
 * FullyConnected: y = x·Wᵀ + b over the dims from `axis` on; output dims[0..axis) + [outputs].
 * Weights [outputs, volume] row-major (TensorRT's layout), bias [outputs].
 */
export const FullyConnected = defineLayer({
  kind: "FullyConnected",
  summary: "fully connected (inner product) over the dims from axis on, with a fused epilogue",
  attrs,
  inputs: { min: 1, max: 2 },
  weightArgs: ["weights", "bias"],
  weights: (ctx) => ({
    weights: { dims: [ctx.attrs.outputs, inputVolume(ctx)] },
    bias: { dims: [ctx.attrs.outputs], optional: true },
  }),
  inferShape: (ctx) => {
    inputVolume(ctx);
    const out = [...ctx.inputs[0].dims.slice(0, ctx.attrs.axis), ctx.attrs.outputs];
    checkResidual(ctx, out);
    return [{ dims: out, dtype: "float32" }];
  },
  fluent: {
    fc: (t: TensorHandle, args: Args<typeof attrs, "weights" | "bias">) => ({
      inputs: [t],
      attrs: args,
    }),
  },
});
