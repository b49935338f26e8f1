/** FullyConnected on the CPU: y[M×K] = x[M×V] · Wᵀ (W is [K×V]) + b, then the epilogue. */
import { gemm } from "./_gemm.ts";
import { type CpuKernel, f32 } from "./_kernel.ts";
import { applyEpilogue, type EpilogueAttrs } from "./_epilogue.ts";

export interface FcAttrs extends EpilogueAttrs {
  outputs: number;
  axis: number;
}

export const fullyConnected: CpuKernel<FcAttrs> = ({ attrs, weights, inputs, outputs }) => {
  const x = f32(inputs[0]), y = f32(outputs[0]);
  const dims = inputs[0].dims;
  let m = 1;
  for (let i = 0; i < attrs.axis; i++) m *= dims[i];
  const v = x.length / m;
  const k = attrs.outputs;
  gemm({
    m,
    n: k,
    k: v,
    a: x,
    lda: v,
    b: weights.weights as Float32Array,
    ldb: v,
    transB: true,
    c: y,
    ldc: k,
  });
  const bias = weights.bias as Float32Array | undefined;
  if (bias) { for (let i = 0; i < m; i++) for (let o = 0; o < k; o++) y[i * k + o] += bias[o]; }
  applyEpilogue(attrs, y, attrs.residual ? inputs[inputs.length - 1] : undefined);
};
