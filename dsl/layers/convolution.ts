import { z } from "zod";
import type { Dims } from "../ir/dims.ts";
import {
  type Args,
  defineLayer,
  expectRank,
  num,
  pair,
  positivePair,
  type ShapeContext,
  shapeError,
  type TensorHandle,
} from "./_define.ts";
import { epilogueAttrs } from "./_epilogue.ts";

const attrs = z.object({
  /** Number of output feature maps. */
  outputs: z.number().int().positive(),
  kernel: positivePair,
  stride: positivePair.default([1, 1]),
  /** Padding before (top, left); also after unless `postPadding` is given. */
  padding: pair.default([0, 0]),
  /** Padding after (bottom, right), for asymmetric padding. */
  postPadding: pair.optional(),
  dilation: positivePair.default([1, 1]),
  groups: z.number().int().positive().default(1),
  ...epilogueAttrs,
});

type Attrs = z.output<typeof attrs>;

/** Output height/width of a 2-D convolution window sweep. */
export function convOutputSize(
  size: number,
  kernel: number,
  stride: number,
  padBefore: number,
  padAfter: number,
  dilation: number,
): number {
  return Math.floor((size + padBefore + padAfter - dilation * (kernel - 1) - 1) / stride) + 1;
}

function channelsIn(ctx: ShapeContext<Attrs>): number {
  const d = expectRank(ctx, 0, 4);
  return num(d[1], "the channel dimension");
}

/** Convolution (2-D, NCHW): weights [outputs, C/groups, kh, kw], bias [outputs]. */
export const Convolution = defineLayer({
  kind: "Convolution",
  summary: "2-D convolution with stride, padding, dilation and groups, and a fused epilogue",
  attrs,
  inputs: { min: 1, max: 2 },
  weightArgs: ["weights", "bias"],
  weights: (ctx) => {
    const c = channelsIn(ctx);
    const a = ctx.attrs;
    return {
      weights: { dims: [a.outputs, Math.floor(c / a.groups), a.kernel[0], a.kernel[1]] },
      bias: { dims: [a.outputs], optional: true },
    };
  },
  inferShape: (ctx) => {
    const a = ctx.attrs;
    const d = expectRank(ctx, 0, 4);
    const c = channelsIn(ctx);
    if (c % a.groups !== 0 || a.outputs % a.groups !== 0) {
      shapeError(`channels (${c}) and outputs (${a.outputs}) must divide by groups (${a.groups})`);
    }
    const post = a.postPadding ?? a.padding;
    const h = convOutputSize(
      num(d[2], "height"),
      a.kernel[0],
      a.stride[0],
      a.padding[0],
      post[0],
      a.dilation[0],
    );
    const w = convOutputSize(
      num(d[3], "width"),
      a.kernel[1],
      a.stride[1],
      a.padding[1],
      post[1],
      a.dilation[1],
    );
    if (h <= 0 || w <= 0) shapeError(`the output would be empty (${h}x${w})`);
    const out: Dims = [d[0], a.outputs, h, w];
    checkResidual(ctx, out);
    return [{ dims: out, dtype: "float32" }];
  },
  fluent: {
    conv: (t: TensorHandle, args: Args<typeof attrs, "weights" | "bias">) => ({
      inputs: [t],
      attrs: args,
    }),
  },
});

/** A residual epilogue reads the layer's last input, which must have the output's shape. */
export function checkResidual(ctx: ShapeContext<{ residual?: string }>, out: Dims): void {
  const hasExtra = ctx.inputs.length > 1;
  if (ctx.attrs.residual && !hasExtra) shapeError("a residual epilogue needs a second input");
  if (!ctx.attrs.residual && hasExtra) {
    shapeError("a second input is only read by a residual epilogue");
  }
  if (hasExtra) {
    const r = ctx.inputs[ctx.inputs.length - 1].dims;
    if (r.length !== out.length || r.some((v, i) => v !== out[i])) {
      shapeError(
        `the residual input ${JSON.stringify(r)} must match the output ${JSON.stringify(out)}`,
      );
    }
  }
}
