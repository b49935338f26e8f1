/** Strides that read an input of `inDims` broadcast to `outDims` (0 along broadcast dims). */
export function broadcastStrides(inDims: readonly number[], outDims: readonly number[]): number[] {
  const rank = outDims.length;
  const strides = new Array<number>(rank).fill(0);
  let acc = 1;
  for (let i = inDims.length - 1; i >= 0; i--) {
    const o = rank - inDims.length + i;
    strides[o] = inDims[i] === 1 && outDims[o] !== 1 ? 0 : acc;
    acc *= inDims[i];
  }
  return strides;
}

/** Calls f(outIndex, inIndex...) over every element of `outDims`, with inputs broadcast. */
export function forEachBroadcast(
  outDims: readonly number[],
  inDims: readonly (readonly number[])[],
  f: (o: number, idx: readonly number[]) => void,
): void {
  const rank = outDims.length;
  const strides = inDims.map((d) => broadcastStrides(d, outDims));
  const total = outDims.reduce((a, b) => a * b, 1);
  const counter = new Array<number>(rank).fill(0);
  const idx = new Array<number>(inDims.length).fill(0);
  for (let o = 0; o < total; o++) {
    f(o, idx);
    // Increment the multi-index and the input offsets.
    for (let d = rank - 1; d >= 0; d--) {
      counter[d]++;
      for (let k = 0; k < idx.length; k++) idx[k] += strides[k][d];
      if (counter[d] < outDims[d]) break;
      for (let k = 0; k < idx.length; k++) idx[k] -= strides[k][d] * outDims[d];
      counter[d] = 0;
    }
  }
}
