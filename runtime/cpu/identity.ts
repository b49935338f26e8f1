/** Identity: a copy, converting the dtype when the output's differs (float→int rounds to nearest even like CUDA's rint, and saturates for int8). */
import type { CpuKernel } from "./_kernel.ts";

export const identity: CpuKernel = ({ inputs, outputs }) => {
  const x = inputs[0].data, y = outputs[0].data;
  if (y instanceof Int8Array && !(x instanceof Int8Array)) {
    for (let i = 0; i < x.length; i++) y[i] = Math.max(-128, Math.min(127, roundEven(x[i])));
  } else if (y instanceof Int32Array && x instanceof Float32Array) {
    for (let i = 0; i < x.length; i++) y[i] = roundEven(x[i]);
  } else {
    for (let i = 0; i < x.length; i++) y[i] = x[i];
  }
};

function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
