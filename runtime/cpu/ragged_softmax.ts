/**
 * RaggedSoftMax: per row, softmax over the first `bound` elements (max-subtracted, summed in
 * double precision) and zeros after them. Every bound is checked before anything is written.
 */
import { KilnError } from "../../errors.ts";
import { type CpuKernel, f32 } from "./_kernel.ts";

export const raggedSoftmax: CpuKernel = ({ layer, inputs, outputs }) => {
  const x = f32(inputs[0]), bounds = inputs[1].data as Int32Array, y = f32(outputs[0]);
  const dims = inputs[0].dims;
  const len = dims[dims.length - 1];
  const rows = bounds.length;
  for (let r = 0; r < rows; r++) {
    const b = bounds[r];
    if (!(b >= 0 && b <= len)) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `RaggedSoftMax layer "${layer}": bound ${b} of row ${r} is outside [0, ${len}] ` +
          `(the row length)`,
        { layer },
      );
    }
  }
  for (let r = 0; r < rows; r++) {
    const base = r * len, b = bounds[r];
    let max = -Infinity;
    for (let j = 0; j < b; j++) if (x[base + j] > max) max = x[base + j];
    let sum = 0;
    for (let j = 0; j < b; j++) sum += Math.exp(x[base + j] - max);
    for (let j = 0; j < b; j++) y[base + j] = Math.exp(x[base + j] - max) / sum;
    y.fill(0, base + b, base + len);
  }
};
