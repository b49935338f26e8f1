/**
 * Padding on the CPU. For each dim, a table maps every output coordinate to the input
 * coordinate it reads (-1 where the constant fills in); a crop is simply a table that starts
 * inside the input. The output is walked row by row (the last dim), so the inner loop is a
 * table lookup.
 */
import { stridesOf } from "../../dsl/ir/dims.ts";
import { type PaddingAttrs, padsOf } from "../../dsl/layers/padding.ts";
import type { CpuKernel } from "./_kernel.ts";

/** Input coordinate read by output coordinate `o` of a dim of size `size` padded by `pre`. */
function sourceIndex(o: number, size: number, pre: number, mode: PaddingAttrs["mode"]): number {
  const i = o - pre;
  if (i >= 0 && i < size) return i;
  switch (mode) {
    case "constant":
      return -1;
    case "edge":
      return i < 0 ? 0 : size - 1;
    case "reflect":
      // Mirror about the first/last element (the edge itself is not repeated).
      return i < 0 ? -i : 2 * (size - 1) - i;
  }
}

export const padding: CpuKernel<PaddingAttrs> = ({ attrs, inputs, outputs }) => {
  const x = inputs[0], y = outputs[0];
  const rank = x.dims.length;
  if (rank === 0) {
    y.data[0] = x.data[0];
    return;
  }
  const { pre } = padsOf(rank, attrs);
  const maps = y.dims.map((size, d) => {
    const m = new Int32Array(size);
    for (let o = 0; o < size; o++) m[o] = sourceIndex(o, x.dims[d], pre[d], attrs.mode);
    return m;
  });
  // Either side may be a view inside a wider tensor (plan/views.ts): dim 0 is then strided.
  const inStrides = stridesOf(x.dims);
  if (x.batchStride !== undefined) inStrides[0] = x.batchStride;
  const outStrides = stridesOf(y.dims);
  if (y.batchStride !== undefined) outStrides[0] = y.batchStride;
  const rowLen = y.dims[rank - 1], lastMap = maps[rank - 1];
  const rows = y.dims.reduce((a, d) => a * d, 1) / rowLen;
  const rowsPerItem = rank > 1 ? rows / y.dims[0] : rows;
  const index = new Array<number>(rank - 1).fill(0); // the row's coordinates in dims 0..rank-2
  for (let row = 0; row < rows; row++) {
    // Where the row starts in the input, or -1 if an outer coordinate falls in constant padding.
    let base = 0;
    for (let d = 0; d < rank - 1 && base >= 0; d++) {
      const i = maps[d][index[d]];
      base = i < 0 ? -1 : base + i * inStrides[d];
    }
    const out = rank > 1 ? index[0] * outStrides[0] + (row % rowsPerItem) * rowLen : row * rowLen;
    if (base < 0) {
      y.data.fill(attrs.value, out, out + rowLen);
    } else {
      for (let o = 0; o < rowLen; o++) {
        const i = lastMap[o];
        y.data[out + o] = i < 0 ? attrs.value : x.data[base + i];
      }
    }
    for (let d = rank - 2; d >= 0 && ++index[d] === y.dims[d]; d--) index[d] = 0;
  }
};
