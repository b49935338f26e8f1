/**
 * Shuffle on the CPU. A reshape only relabels row-major data, so the work is the two
 * transposes; an identity permutation is skipped, and a plain reshape is one copy.
 */
import { dtypeOfArray, type HostArray, newHostArray } from "../../dsl/ir/dtype.ts";
import { stridesOf } from "../../dsl/ir/dims.ts";
import type { ShuffleAttrs } from "../../dsl/layers/shuffle.ts";
import type { CpuKernel } from "./_kernel.ts";

/**
 * dst = src transposed by `perm` (dst dim i is src dim perm[i]). Walks dst in order, keeping the
 * matching src offset up to date with the src strides of each dst dim.
 */
export function permute(
  src: HostArray,
  srcDims: readonly number[],
  perm: readonly number[],
  dst: HostArray,
): void {
  const rank = perm.length;
  const srcStrides = stridesOf([...srcDims]);
  const dims = perm.map((p) => srcDims[p]);
  const strides = perm.map((p) => srcStrides[p]);
  const total = dst.length;
  if (rank === 0) {
    dst.set(src as never);
    return;
  }
  // The innermost dst dim is a strided run of src: copy it in a tight loop.
  const inner = dims[rank - 1], innerStride = strides[rank - 1];
  const index = new Array<number>(rank).fill(0);
  let from = 0;
  for (let to = 0; to < total; to += inner) {
    for (let j = 0, s = from; j < inner; j++, s += innerStride) dst[to + j] = src[s];
    // Advance the outer multi-index (dims 0..rank-2) and the src offset with it.
    for (let d = rank - 2; d >= 0; d--) {
      from += strides[d];
      if (++index[d] < dims[d]) break;
      from -= strides[d] * dims[d];
      index[d] = 0;
    }
  }
}

function isIdentity(perm: readonly number[] | undefined): boolean {
  return !perm || perm.every((p, i) => p === i);
}

export const shuffle: CpuKernel<ShuffleAttrs> = ({ attrs, inputs, outputs }) => {
  const x = inputs[0], y = outputs[0];
  const first = attrs.firstTranspose, second = attrs.secondTranspose;
  if (isIdentity(second)) {
    if (isIdentity(first)) y.data.set(x.data as never);
    else permute(x.data, x.dims, first!, y.data);
    return;
  }
  // The dims between the reshape and the second transpose: y's dims with that transpose undone.
  const reshaped = new Array<number>(y.dims.length);
  second!.forEach((p, i) => (reshaped[p] = y.dims[i]));
  let middle = x.data;
  if (!isIdentity(first)) {
    middle = newHostArray(dtypeOfArray(x.data), x.data.length);
    permute(x.data, x.dims, first!, middle);
  }
  permute(middle, reshaped, second!, y.data);
};
