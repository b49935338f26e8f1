/**
 * Cross-channel LRN on the CPU. Seen as [outer, C, inner] (C the channel axis, inner the
 * spatial positions): for each position, square the C values once, then each output divides by
 * (k + alpha/window · the sum of the squares in its channel window)^beta. The window is at most
 * 15 channels, so a direct sum is cheap and avoids the rounding drift of a running sum.
 */
import { volume } from "../../dsl/ir/dims.ts";
import { type LrnAttrs, lrnChannelAxis } from "../../dsl/layers/lrn.ts";
import { type CpuKernel, f32 } from "./_kernel.ts";

export const lrn: CpuKernel<LrnAttrs> = ({ attrs, inputs, outputs }) => {
  const x = f32(inputs[0]), y = f32(outputs[0]);
  const dims = inputs[0].dims;
  const axis = lrnChannelAxis(dims.length);
  const outer = volume(dims, 0, axis), c = dims[axis], inner = volume(dims, axis + 1);
  const half = (attrs.window - 1) / 2;
  const scale = attrs.alpha / attrs.window;
  const sq = new Float64Array(c); // the squares at one spatial position, across channels
  for (let o = 0; o < outer; o++) {
    const base = o * c * inner;
    for (let p = 0; p < inner; p++) {
      for (let ch = 0; ch < c; ch++) {
        const v = x[base + ch * inner + p];
        sq[ch] = v * v;
      }
      for (let ch = 0; ch < c; ch++) {
        let sum = 0;
        const from = Math.max(0, ch - half), to = Math.min(c - 1, ch + half);
        for (let j = from; j <= to; j++) sum += sq[j];
        const at = base + ch * inner + p;
        y[at] = x[at] / Math.pow(attrs.k + scale * sum, attrs.beta);
      }
    }
  }
};
