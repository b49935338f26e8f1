import { z } from "zod";
import { KilnError } from "../../errors.ts";
import { type Dim, type Dims, formatDims, isBatched, N } from "../ir/dims.ts";
import { DTYPES } from "../ir/dtype.ts";
import { defineLayer, shapeError, type TensorHandle } from "./_define.ts";

const permutation = z.array(z.number().int().nonnegative());

const attrs = z.object({
  /** Permutation applied first: output dim i is input dim firstTranspose[i]. Identity if omitted. */
  firstTranspose: permutation.optional(),
  /**
   * New dims after the first transpose: 0 copies the dim at the same position, -1 is inferred
   * from the volume (at most one), "N" (first entry only) keeps the batch, like 0 there.
   */
  reshape: z.array(z.union([z.number().int().min(-1), z.literal(N)])).optional(),
  /** Permutation applied last, to the reshaped dims. Identity if omitted. */
  secondTranspose: permutation.optional(),
});

export type ShuffleAttrs = z.output<typeof attrs>;

function transpose(dims: Dims, perm: readonly number[] | undefined, which: string): Dim[] {
  if (!perm) return [...dims];
  const isPermutation = perm.length === dims.length &&
    perm.every((p, i) => p < dims.length && perm.indexOf(p) === i);
  if (!isPermutation) {
    shapeError(
      `${which} ${JSON.stringify(perm)} is not a permutation of the ${dims.length} dims of ${
        formatDims(dims)
      }`,
    );
  }
  if (isBatched(dims) && perm[0] !== 0) {
    shapeError(`${which} ${JSON.stringify(perm)} must keep the batch dim N first (start with 0)`);
  }
  return perm.map((p) => dims[p]);
}

function reshape(dims: Dims, spec: readonly (number | typeof N)[]): Dim[] {
  const batched = isBatched(dims);
  if (batched && spec[0] !== 0 && spec[0] !== N) {
    shapeError(
      `reshape ${
        JSON.stringify(spec)
      } must keep the batch: its first entry must be 0 (copy) or "N"`,
    );
  }
  if (spec.indexOf(N) > 0 || (spec[0] === N && !batched)) {
    shapeError(
      `reshape ${JSON.stringify(spec)}: "N" may only be the first entry of a batched input`,
    );
  }
  if (spec.filter((d) => d === -1).length > 1) {
    shapeError(`reshape ${JSON.stringify(spec)} has more than one -1`);
  }
  const out: Dim[] = spec.map((d, i) => {
    if (d === N) return N;
    if (d !== 0) return d;
    if (i >= dims.length) {
      shapeError(
        `reshape ${JSON.stringify(spec)}: entry ${i} is 0 (copy) but the input ${
          formatDims(dims)
        } has no dim ${i}`,
      );
    }
    return dims[i];
  });
  // Volumes per batch item (the batch itself is copied, so it cancels out).
  const have = dims.reduce<number>((v, d) => (d === N ? v : v * d), 1);
  const known = out.reduce<number>((v, d) => (d === N || d === -1 ? v : v * d), 1);
  const inferred = out.indexOf(-1);
  if (inferred >= 0) {
    if (have % known !== 0) {
      shapeError(
        `reshape ${JSON.stringify(spec)}: the -1 cannot be inferred, ${have} elements of ${
          formatDims(dims)
        } do not divide by ${known}`,
      );
    }
    out[inferred] = have / known;
  } else if (known !== have) {
    shapeError(
      `reshape ${JSON.stringify(spec)} gives ${known} elements${
        batched ? " per batch item" : ""
      }; the input ${formatDims(dims)} has ${have}`,
    );
  }
  return out;
}

/** Output dims of a shuffle: transpose, reshape, transpose. */
export function shuffleShape(dims: Dims, a: ShuffleAttrs): Dim[] {
  let d = transpose(dims, a.firstTranspose, "firstTranspose");
  if (a.reshape) d = reshape(d, a.reshape);
  return transpose(d, a.secondTranspose, "secondTranspose");
}

/**
 * Shuffle (TensorRT's IShuffleLayer): a transpose, a reshape and a second transpose. A reshape
 * alone moves no data; the transposes do. The batch dim N stays first throughout.
 */
export const Shuffle = defineLayer({
  kind: "Shuffle",
  summary: "transpose, reshape, transpose",
  attrs,
  inputs: { min: 1, max: 1 },
  inputDTypes: [DTYPES],
  inferShape: ({ inputs, attrs }) => [
    { dims: shuffleShape(inputs[0].dims, attrs), dtype: inputs[0].dtype },
  ],
  fluent: {
    shuffle: (t: TensorHandle, { name, ...args }: z.input<typeof attrs> & { name?: string }) => ({
      inputs: [t],
      attrs: args,
      name,
    }),
    /** `t.reshape([0, -1])`: see `reshape` above for 0, -1 and "N". */
    reshape: (t: TensorHandle, dims: (number | typeof N)[]) => ({
      inputs: [t],
      attrs: { reshape: dims },
    }),
    transpose: (t: TensorHandle, perm: number[]) => ({
      inputs: [t],
      attrs: { firstTranspose: perm },
    }),
    /**
     * `t.flatten(axis)`: keeps the dims before `axis` and joins the rest into one (Caffe's
     * Flatten; with the default axis 1, [N, C, H, W] becomes [N, C·H·W]).
     */
    flatten: (t: TensorHandle, axis = 1) => {
      const rank = t.dims.length;
      const a = axis < 0 ? axis + rank : axis;
      if (!Number.isInteger(a) || a < 0 || a > rank) {
        throw new KilnError(
          "INVALID_ARGUMENT",
          `flatten(${axis}) on "${t.name}" ${
            formatDims(t.dims)
          }: the axis must be in [${-rank}, ${rank}]`,
          { tensor: t.name },
        );
      }
      return { inputs: [t], attrs: { reshape: [...new Array(a).fill(0), -1] } };
    },
  },
});
