/**
 * TopK along one axis. Each slice is selected with a bounded heap of the k best seen so far
 * (O(L log k)), then emptied worst-first into the output from the back, so the result is sorted
 * best-first. k = 1 (argmax/argmin) is a plain scan. Ties keep the lower index first; NaN ranks
 * above every number (first for max, last for min), as the layer definition documents.
 */
import { normalizeAxis } from "../../dsl/ir/dims.ts";
import type { TopKAttrs } from "../../dsl/layers/topk.ts";
import type { CpuKernel } from "./_kernel.ts";

/** `true` when element (va, ia) ranks strictly before (vb, ib). */
type Before = (va: number, ia: number, vb: number, ib: number) => boolean;

const beforeMax: Before = (va, ia, vb, ib) => {
  if (va > vb) return true;
  if (va < vb) return false;
  if (va === vb) return ia < ib;
  // At least one NaN: NaN is the largest value.
  const na = va !== va, nb = vb !== vb;
  return na && nb ? ia < ib : na;
};

const beforeMin: Before = (va, ia, vb, ib) => {
  if (va < vb) return true;
  if (va > vb) return false;
  if (va === vb) return ia < ib;
  // At least one NaN: NaN is the largest value, so it comes last.
  const na = va !== va, nb = vb !== vb;
  return na && nb ? ia < ib : nb;
};

export const topk: CpuKernel<TopKAttrs> = ({ attrs, inputs, outputs }) => {
  const x = inputs[0].data, dims = inputs[0].dims;
  const values = outputs[0].data, indices = outputs[1].data as Int32Array;
  const axis = normalizeAxis(attrs.axis, dims.length);
  const len = dims[axis], k = attrs.k;
  let outer = 1, inner = 1;
  for (let i = 0; i < axis; i++) outer *= dims[i];
  for (let i = axis + 1; i < dims.length; i++) inner *= dims[i];
  const before = attrs.op === "max" ? beforeMax : beforeMin;

  const slice = new Float64Array(len); // the current slice, contiguous
  const heap = new Int32Array(k); // indices into `slice`; heap[0] is the worst kept
  // `worse(a, b)`: heap order, the worst of the kept elements at the root.
  const worse = (a: number, b: number) => before(slice[b], b, slice[a], a);
  const siftDown = (from: number, size: number) => {
    let i = from;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let w = i;
      if (l < size && worse(heap[l], heap[w])) w = l;
      if (r < size && worse(heap[r], heap[w])) w = r;
      if (w === i) return;
      const t = heap[i];
      heap[i] = heap[w];
      heap[w] = t;
      i = w;
    }
  };

  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const inBase = o * len * inner + i, outBase = o * k * inner + i;
      for (let j = 0; j < len; j++) slice[j] = x[inBase + j * inner];
      if (k === 1) {
        let best = 0;
        for (let j = 1; j < len; j++) if (before(slice[j], j, slice[best], best)) best = j;
        values[outBase] = slice[best];
        indices[outBase] = best;
        continue;
      }
      for (let j = 0; j < k; j++) heap[j] = j;
      for (let j = (k >> 1) - 1; j >= 0; j--) siftDown(j, k);
      for (let j = k; j < len; j++) {
        if (before(slice[j], j, slice[heap[0]], heap[0])) {
          heap[0] = j;
          siftDown(0, k);
        }
      }
      // Pop the worst first, writing from the back: the output ends up best-first.
      for (let size = k; size > 0; size--) {
        const j = heap[0];
        values[outBase + (size - 1) * inner] = slice[j];
        indices[outBase + (size - 1) * inner] = j;
        heap[0] = heap[size - 1];
        siftDown(0, size - 1);
      }
    }
  }
};
