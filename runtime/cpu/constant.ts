/** Constant on the CPU: copies the layer's values into its output (activation buffers may be reused). */
import type { CpuKernel } from "./_kernel.ts";

export const constant: CpuKernel = ({ weights, outputs }) => {
  outputs[0].data.set(weights.values as never);
};
