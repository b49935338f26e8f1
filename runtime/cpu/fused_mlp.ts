/**
 * FusedMlp on the CPU: each stage is a FullyConnected (GEMM against the stage's [outputs ×
 * inputs] weights, bias, activation) feeding the next; intermediate activations live only here.
 */
import { type FusedMlpAttrs, stageSlots } from "../../dsl/layers/fused_mlp.ts";
import { gemm } from "./_gemm.ts";
import { type CpuKernel, f32 } from "./_kernel.ts";
import { applyActivation } from "./activation.ts";

export const fusedMlp: CpuKernel<FusedMlpAttrs> = ({ attrs, weights, inputs, outputs }) => {
  const dims = inputs[0].dims;
  let rows = 1;
  for (let i = 0; i < attrs.axis; i++) rows *= dims[i];
  let x = f32(inputs[0]);
  let k = rows === 0 ? 0 : x.length / rows;
  attrs.stages.forEach((s, i) => {
    const n = s.outputs;
    const last = i === attrs.stages.length - 1;
    const y = last ? f32(outputs[0]) : new Float32Array(rows * n);
    const slots = stageSlots(i);
    gemm({
      m: rows,
      n,
      k,
      a: x,
      lda: k,
      b: weights[slots.weights] as Float32Array,
      ldb: k,
      transB: true,
      c: y,
      ldc: n,
    });
    const bias = weights[slots.bias] as Float32Array | undefined;
    if (bias) {
      for (let r = 0; r < rows; r++) for (let o = 0; o < n; o++) y[r * n + o] += bias[o];
    }
    if (s.activation) applyActivation(s.activation, y);
    x = y;
    k = n;
  });
};
