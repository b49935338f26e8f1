/** Softmax (or log-softmax) over one axis, max-subtracted for stability. */
import { normalizeAxis } from "../../dsl/ir/dims.ts";
import { type CpuKernel, f32 } from "./_kernel.ts";

export const softmax: CpuKernel<{ axis: number; log: boolean }> = ({ attrs, inputs, outputs }) => {
  const x = f32(inputs[0]), y = f32(outputs[0]);
  const dims = inputs[0].dims;
  const axis = normalizeAxis(attrs.axis, dims.length);
  let outer = 1, inner = 1;
  for (let i = 0; i < axis; i++) outer *= dims[i];
  for (let i = axis + 1; i < dims.length; i++) inner *= dims[i];
  const len = dims[axis];
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * len * inner + i;
      let max = -Infinity;
      for (let j = 0; j < len; j++) max = Math.max(max, x[base + j * inner]);
      let sum = 0;
      for (let j = 0; j < len; j++) sum += Math.exp(x[base + j * inner] - max);
      if (attrs.log) {
        const ls = Math.log(sum);
        for (let j = 0; j < len; j++) y[base + j * inner] = x[base + j * inner] - max - ls;
      } else {
        for (let j = 0; j < len; j++) {
          y[base + j * inner] = Math.exp(x[base + j * inner] - max) / sum;
        }
      }
    }
  }
};
