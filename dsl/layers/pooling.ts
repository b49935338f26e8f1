import { z } from "zod";
import {
  type Args,
  defineLayer,
  expectRank,
  num,
  pair,
  positivePair,
  shapeError,
  type TensorHandle,
} from "./_define.ts";

const attrs = z.object({
  type: z.enum(["max", "average"]),
  /** Window size; ignored when `global`. */
  window: positivePair.default([1, 1]),
  /** Stride; defaults to the window. */
  stride: positivePair.optional(),
  padding: pair.default([0, 0]),
  postPadding: pair.optional(),
  /** Average pooling: divide by the window's elements inside the image only (TensorRT default). */
  excludePadding: z.boolean().default(true),
  /** "ceil" rounds the output size up, as Caffe does (the last window still starts inside). */
  rounding: z.enum(["floor", "ceil"]).default("floor"),
  /** Pool over the whole spatial extent. */
  global: z.boolean().default(false),
});

export type PoolingAttrs = z.output<typeof attrs>;

/** Output size of one pooled spatial dim, with Caffe's rule for ceil rounding. */
export function poolOutputSize(
  size: number,
  window: number,
  stride: number,
  padBefore: number,
  padAfter: number,
  rounding: "floor" | "ceil",
): number {
  const span = size + padBefore + padAfter - window;
  let out = (rounding === "ceil" ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  // A window must start inside the image or the leading padding (Caffe, TensorRT). Caffe checks
  // this only when there is padding; without padding it can fail only for stride > window, where
  // Caffe would pool an empty window, so Kiln checks it always.
  if (rounding === "ceil" && (out - 1) * stride >= size + padBefore) out--;
  return out;
}

/** The effective window, stride and padding of a pooling layer on an input of h×w. */
export function poolGeometry(a: PoolingAttrs, h: number, w: number) {
  const window: [number, number] = a.global ? [h, w] : a.window;
  const stride: [number, number] = a.global ? [1, 1] : a.stride ?? a.window;
  const pad: [number, number] = a.global ? [0, 0] : a.padding;
  const post: [number, number] = a.global ? [0, 0] : a.postPadding ?? a.padding;
  return { window, stride, pad, post };
}

/** Pooling (2-D, NCHW): max or average, with padding, ceil rounding and global pooling. */
export const Pooling = defineLayer({
  kind: "Pooling",
  summary: "2-D max or average pooling",
  attrs,
  inputs: { min: 1, max: 1 },
  inferShape: (ctx) => {
    const d = expectRank(ctx, 0, 4);
    const h = num(d[2], "height");
    const w = num(d[3], "width");
    const g = poolGeometry(ctx.attrs, h, w);
    // Padding as large as the window would let a window hold padding alone.
    for (const [what, p] of [["padding", g.pad], ["postPadding", g.post]] as const) {
      if (p[0] >= g.window[0] || p[1] >= g.window[1]) {
        shapeError(
          `${what} ${JSON.stringify(p)} must be smaller than the window ${
            JSON.stringify(g.window)
          }`,
        );
      }
    }
    const oh = poolOutputSize(h, g.window[0], g.stride[0], g.pad[0], g.post[0], ctx.attrs.rounding);
    const ow = poolOutputSize(w, g.window[1], g.stride[1], g.pad[1], g.post[1], ctx.attrs.rounding);
    if (oh <= 0 || ow <= 0) shapeError(`the output would be empty (${oh}x${ow})`);
    return [{ dims: [d[0], d[1], oh, ow], dtype: ctx.inputs[0].dtype }];
  },
  fluent: {
    pool: (t: TensorHandle, args: Args<typeof attrs>) => ({ inputs: [t], attrs: args }),
    maxPool: (t: TensorHandle, args: Omit<Args<typeof attrs>, "type">) => ({
      inputs: [t],
      attrs: { ...args, type: "max" },
    }),
    avgPool: (t: TensorHandle, args: Omit<Args<typeof attrs>, "type">) => ({
      inputs: [t],
      attrs: { ...args, type: "average" },
    }),
  },
});
