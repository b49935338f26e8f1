/**
 * Reformat on the CPU: writes its input in another precision's values (float32 storage, see
 * _quant.ts): to INT8 each element becomes fround(quantize(x, scale) · scale), to FP16 its
 * nearest half, to FP32 a copy (a dequantize or widen changes no value, only the format a GPU
 * stores).
 */
import { type CpuKernel, f32 } from "./_kernel.ts";
import { fakeQuantizeArray, roundArrayToHalf } from "./_quant.ts";

export interface ReformatAttrs {
  to: "fp32" | "fp16" | "int8";
  scale?: number;
}

export const reformat: CpuKernel<ReformatAttrs> = ({ attrs, inputs, outputs }) => {
  const y = f32(outputs[0]);
  y.set(f32(inputs[0]));
  if (attrs.to === "int8") fakeQuantizeArray(y, attrs.scale!);
  else if (attrs.to === "fp16") roundArrayToHalf(y);
};
