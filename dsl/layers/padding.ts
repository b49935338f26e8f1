import { z } from "zod";
import { type Dim, type Dims, N } from "../ir/dims.ts";
import { defineLayer, shapeError, type TensorHandle } from "./_define.ts";

const attrs = z.object({
  /** Elements added before each of the LAST pre.length dims; a negative value crops instead. */
  pre: z.array(z.number().int()).default([]),
  /** Elements added after each of the LAST post.length dims; a negative value crops instead. */
  post: z.array(z.number().int()).default([]),
  /**
   * constant: fill with `value`; reflect: mirror without repeating the edge (numpy's "reflect",
   * [a b c] → b [a b c] b); edge: repeat the edge value.
   */
  mode: z.enum(["constant", "reflect", "edge"]).default("constant"),
  value: z.number().default(0),
});

export type PaddingAttrs = z.output<typeof attrs>;

/** The pads of every dim: `pre`/`post` aligned to the last dims, 0 for the leading ones. */
export function padsOf(rank: number, a: PaddingAttrs): { pre: number[]; post: number[] } {
  const align = (p: readonly number[]) =>
    Array.from({ length: rank }, (_, i) => p[i - (rank - p.length)] ?? 0);
  return { pre: align(a.pre), post: align(a.post) };
}

function padShape(dims: Dims, a: PaddingAttrs): Dim[] {
  const rank = dims.length;
  for (const [which, p] of [["pre", a.pre], ["post", a.post]] as const) {
    if (p.length > rank) {
      shapeError(
        `${which} ${JSON.stringify(p)} has more entries than the input has dims (${rank})`,
      );
    }
  }
  const { pre, post } = padsOf(rank, a);
  return dims.map((d, i) => {
    if (d === N) {
      if (pre[i] !== 0 || post[i] !== 0) shapeError("the batch dimension N cannot be padded");
      return N;
    }
    const size = pre[i] + d + post[i];
    if (size <= 0) {
      shapeError(
        `dim ${i} (${d}) padded by ${pre[i]} before and ${post[i]} after would be empty`,
      );
    }
    // A single reflection must reach every padded position: at most d-1 on each side.
    if (a.mode === "reflect" && (pre[i] > d - 1 || post[i] > d - 1)) {
      shapeError(
        `reflect padding of dim ${i} (${d}) by ${pre[i]} before and ${post[i]} after: ` +
          `each side may add at most ${d - 1}`,
      );
    }
    return size;
  });
}

/**
 * Padding: pads (or, with negative values, crops) the trailing dims of a tensor, with a
 * constant, a reflection or the edge values. Output dim = pre + dim + post.
 */
export const Padding = defineLayer({
  kind: "Padding",
  summary: "pads or crops the trailing dims (constant, reflect or edge)",
  attrs,
  inputs: { min: 1, max: 1 },
  inputDTypes: [["float32", "int32"]],
  inferShape: ({ inputs, attrs }) => {
    const x = inputs[0];
    if (x.dtype === "int32" && !Number.isInteger(attrs.value)) {
      shapeError(`the fill value ${attrs.value} is not an integer, and the input is int32`);
    }
    if (attrs.mode !== "constant" && attrs.value !== 0) {
      shapeError(
        `a fill value (${attrs.value}) is only used by mode "constant", not "${attrs.mode}"`,
      );
    }
    return [{ dims: padShape(x.dims, attrs), dtype: x.dtype }];
  },
  fluent: {
    pad: (t: TensorHandle, { name, ...args }: z.input<typeof attrs> & { name?: string }) => ({
      inputs: [t],
      attrs: args,
      name,
    }),
  },
});
