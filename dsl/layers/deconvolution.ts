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
import { checkResidual } from "./convolution.ts";

const attrs = z.object({
  /** Number of output feature maps. */
  outputs: z.number().int().positive(),
  kernel: positivePair,
  stride: positivePair.default([1, 1]),
  /** Rows/columns cropped from the start (top, left) of the full output; also the end's unless `postPadding`. */
  padding: pair.default([0, 0]),
  /** Rows/columns cropped from the end (bottom, right), for asymmetric padding. */
  postPadding: pair.optional(),
  dilation: positivePair.default([1, 1]),
  groups: z.number().int().positive().default(1),
  /** Extra rows/columns added at the end (bottom, right), as ONNX's `output_padding`. */
  outputPadding: pair.default([0, 0]),
  ...epilogueAttrs,
});

type Attrs = z.output<typeof attrs>;

/**
 * Output height/width of a transposed convolution: the inverse of a convolution's size rule,
 * (size-1)·stride - padBefore - padAfter + dilation·(kernel-1) + 1 + outputPadding.
 */
export function deconvOutputSize(
  size: number,
  kernel: number,
  stride: number,
  padBefore: number,
  padAfter: number,
  dilation: number,
  outputPadding: number,
): number {
  return (size - 1) * stride - padBefore - padAfter + dilation * (kernel - 1) + 1 + outputPadding;
}

function channelsIn(ctx: ShapeContext<Attrs>): number {
  const d = expectRank(ctx, 0, 4);
  return num(d[1], "the channel dimension");
}

/**
 * Deconvolution (transposed 2-D convolution, NCHW): each input pixel scatters a kernel-sized
 * patch into the output. Weights [C_in, outputs/groups, kh, kw] (the Caffe/TensorRT layout),
 * bias [outputs].
 */
export const Deconvolution = defineLayer({
  kind: "Deconvolution",
  summary: "2-D transposed convolution with stride, padding, dilation, groups, output padding " +
    "and a fused epilogue",
  attrs,
  inputs: { min: 1, max: 2 },
  weightArgs: ["weights", "bias"],
  weights: (ctx) => {
    const c = channelsIn(ctx);
    const a = ctx.attrs;
    return {
      weights: { dims: [c, Math.floor(a.outputs / a.groups), a.kernel[0], a.kernel[1]] },
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
    for (let i = 0; i < 2; i++) {
      // Beyond max(stride, dilation) the extra rows are reached by no input pixel (as ONNX rules).
      if (a.outputPadding[i] >= Math.max(a.stride[i], a.dilation[i])) {
        shapeError(
          `outputPadding ${JSON.stringify(a.outputPadding)} must be smaller than the stride ` +
            `${JSON.stringify(a.stride)} or the dilation ${JSON.stringify(a.dilation)} in each dim`,
        );
      }
    }
    const post = a.postPadding ?? a.padding;
    const size = (i: 0 | 1, s: number) =>
      deconvOutputSize(
        s,
        a.kernel[i],
        a.stride[i],
        a.padding[i],
        post[i],
        a.dilation[i],
        a.outputPadding[i],
      );
    const h = size(0, num(d[2], "height"));
    const w = size(1, num(d[3], "width"));
    if (h <= 0 || w <= 0) {
      shapeError(`the output would be empty (${h}x${w}): the padding crops more than the output`);
    }
    const out: Dims = [d[0], a.outputs, h, w];
    checkResidual(ctx, out);
    return [{ dims: out, dtype: "float32" }];
  },
  fluent: {
    deconv: (t: TensorHandle, { name, ...args }: Args<typeof attrs, "weights" | "bias">) => ({
      inputs: [t],
      attrs: args,
      name,
    }),
  },
});
