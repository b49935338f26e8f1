/**
 * Concatenation on the CPU. Seen as [outer, axis, inner] (outer = the dims before the axis,
 * inner = those after), each input contributes one contiguous run of axis_i·inner values per
 * outer index, so the kernel is a sequence of block copies.
 */
import { volume } from "../../dsl/ir/dims.ts";
import type { CpuKernel } from "./_kernel.ts";

export const concatenation: CpuKernel<{ axis: number }> = ({ attrs, inputs, outputs }) => {
  const out = outputs[0];
  const rank = out.dims.length;
  const axis = attrs.axis < 0 ? attrs.axis + rank : attrs.axis;
  const outer = volume(out.dims, 0, axis);
  const inner = volume(out.dims, axis + 1);
  const outRun = out.dims[axis] * inner;
  let at = 0; // where the current input's run starts inside each output run
  for (const input of inputs) {
    const run = input.dims[axis] * inner;
    for (let o = 0; o < outer; o++) {
      // Same typed-array kind on both sides (the layer requires one dtype), so set() is a memcpy.
      out.data.set(input.data.subarray(o * run, (o + 1) * run) as never, o * outRun + at);
    }
    at += run;
  }
};
