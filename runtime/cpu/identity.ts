/**
 * Identity: a copy, converting the dtype when the output's differs. float16 travels as raw bits
 * (Uint16Array) and converts exactly (round to nearest even); float→int rounds to nearest even
 * like CUDA's rint and saturates to the integer type's range (NaN becomes 0).
 */
import { float16BitsToFloat32, float32ToFloat16Bits } from "../../dsl/ir/dtype.ts";
import type { CpuKernel } from "./_kernel.ts";

export const identity: CpuKernel = ({ inputs, outputs }) => {
  const x = inputs[0].data, y = outputs[0].data;
  const fromHalf = x instanceof Uint16Array;
  const read = fromHalf ? (i: number) => float16BitsToFloat32(x[i]) : (i: number) => x[i];
  if (y instanceof Uint16Array) {
    if (fromHalf) y.set(x);
    else for (let i = 0; i < x.length; i++) y[i] = float32ToFloat16Bits(x[i]);
  } else if (y instanceof Int8Array) {
    for (let i = 0; i < x.length; i++) y[i] = toInt(read(i), -128, 127);
  } else if (y instanceof Int32Array) {
    for (let i = 0; i < x.length; i++) y[i] = toInt(read(i), -2147483648, 2147483647);
  } else {
    for (let i = 0; i < x.length; i++) y[i] = read(i);
  }
};

function toInt(v: number, lo: number, hi: number): number {
  if (v !== v) return 0;
  return Math.max(lo, Math.min(hi, roundEven(v)));
}

function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
