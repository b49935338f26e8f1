import { z } from "zod";
import { formatDims, N } from "../ir/dims.ts";
import { defineLayer, shapeError, type TensorHandle } from "./_define.ts";

/** Ranges as TensorRT's ILRNLayer documents them. */
const attrs = z.object({
  /** Channels in the window, centred on the channel being normalized: odd, 1 to 15. */
  window: z.number().int().min(1).max(15).refine((w) => w % 2 === 1, "must be odd").default(5),
  alpha: z.number().min(-1e20).max(1e20).default(1e-4),
  beta: z.number().min(0.01).max(1e5).default(0.75),
  k: z.number().min(1e-5).max(1e10).default(1),
});

export type LrnAttrs = z.output<typeof attrs>;

/** The channel axis of LRN: the third dim from the end (1 for NCHW, 0 for CHW), as TensorRT. */
export function lrnChannelAxis(rank: number): number {
  return rank - 3;
}

/**
 * LRN, cross-channel local response normalization (AlexNet, TensorRT semantics):
 *   y[c] = x[c] / (k + alpha/window · Σ x[c']²)^beta
 * over the channels c' within window/2 of c (clipped at the edges).
 */
export const LRN = defineLayer({
  kind: "LRN",
  summary: "cross-channel local response normalization",
  attrs,
  inputs: { min: 1, max: 1 },
  inferShape: ({ inputs }) => {
    const d = inputs[0].dims;
    if (d.length < 3) {
      shapeError(
        `the input must have rank 3 or more (channels, then two spatial dims), got ${
          formatDims(d)
        }`,
      );
    }
    if (d[lrnChannelAxis(d.length)] === N) {
      shapeError("the channel axis (third from the end) cannot be the symbolic batch dimension");
    }
    return [{ dims: d, dtype: "float32" }];
  },
  fluent: {
    lrn: (t: TensorHandle, { name, ...args }: z.input<typeof attrs> & { name?: string } = {}) => ({
      inputs: [t],
      attrs: args,
      name,
    }),
  },
});
