/**
 * Dimensions. Every tensor has explicit dims including the batch dimension; the leading
 * dimension may be the symbolic batch `N`, bounded at build time by `maxBatchSize` and made
 * concrete per execution.
 */
export const N = "N" as const;
export type BatchDim = typeof N;
export type Dim = number | BatchDim;
export type Dims = readonly Dim[];

export function isBatched(dims: Dims): boolean {
  return dims.length > 0 && dims[0] === N;
}

/** Dims with the symbolic batch replaced by `batch`. */
export function concreteDims(dims: Dims, batch: number): number[] {
  return dims.map((d) => (d === N ? batch : d));
}

/** Product of the concrete dims from `from` (inclusive) to `to` (exclusive). */
export function volume(dims: readonly number[], from = 0, to = dims.length): number {
  let v = 1;
  for (let i = from; i < to; i++) v *= dims[i];
  return v;
}

/** Elements per batch item of a (possibly batched) shape; for unbatched shapes, all elements. */
export function itemVolume(dims: Dims): number {
  let v = 1;
  for (let i = isBatched(dims) ? 1 : 0; i < dims.length; i++) v *= dims[i] as number;
  return v;
}

export function formatDims(dims: Dims): string {
  return `[${dims.join(",")}]`;
}

export function sameDims(a: Dims, b: Dims): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Row-major strides of concrete dims. */
export function stridesOf(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length);
  let acc = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= dims[i];
  }
  return s;
}

/** Normalizes a possibly negative axis for a tensor of `rank` dims, or returns -1 if out of range. */
export function normalizeAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  return a >= 0 && a < rank ? a : -1;
}

/**
 * Numpy-style broadcast of two shapes (aligned at the trailing dims). The symbolic batch
 * broadcasts with itself or with 1. Returns undefined when the shapes are incompatible.
 */
export function broadcastDims(a: Dims, b: Dims): Dim[] | undefined {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = new Array(rank);
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x === y) out[i] = x;
    else if (x === 1) out[i] = y;
    else if (y === 1) out[i] = x;
    else return undefined;
  }
  if (out.some((d, i) => d === N && i !== 0)) return undefined;
  return out;
}
