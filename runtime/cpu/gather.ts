/**
 * Gather on the CPU. Seen as data [outer, axisLen, inner], each index copies one contiguous
 * block of `inner` values per outer position. Indices are checked before anything is written.
 */
import { normalizeAxis, volume } from "../../dsl/ir/dims.ts";
import { KilnError } from "../../errors.ts";
import type { CpuKernel } from "./_kernel.ts";

export const gather: CpuKernel<{ axis: number }> = ({ layer, attrs, inputs, outputs }) => {
  const [data, indices] = inputs;
  const y = outputs[0].data;
  const axis = normalizeAxis(attrs.axis, data.dims.length);
  const outer = volume(data.dims, 0, axis);
  const axisLen = data.dims[axis];
  const inner = volume(data.dims, axis + 1);
  const idx = indices.data as Int32Array;

  // Resolve negative indices and refuse any out of range: a wrong row must never be read.
  const rows = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    const j = idx[i] < 0 ? idx[i] + axisLen : idx[i];
    if (j < 0 || j >= axisLen) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `Gather layer "${layer}": index ${idx[i]} (element ${i} of the indices) is out of range ` +
          `for axis ${axis} of size ${axisLen} (valid: ${-axisLen} to ${axisLen - 1})`,
        { layer },
      );
    }
    rows[i] = j;
  }

  for (let o = 0; o < outer; o++) {
    const src = o * axisLen * inner;
    const dst = o * rows.length * inner;
    for (let i = 0; i < rows.length; i++) {
      const from = src + rows[i] * inner;
      y.set(data.data.subarray(from, from + inner) as never, dst + i * inner);
    }
  }
};
