import { activationParams, type ActivationSpec } from "../../dsl/layers/_epilogue.ts";
import { type CpuKernel, f32 } from "./_kernel.ts";

/** The scalar function of an activation spec (TensorRT's definitions). */
export function activationFunction(spec: ActivationSpec): (x: number) => number {
  const { alpha, beta } = activationParams(spec);
  switch (spec.type) {
    case "relu":
      return (x) => (x > 0 ? x : 0);
    case "sigmoid":
      return (x) => 1 / (1 + Math.exp(-x));
    case "tanh":
      return Math.tanh;
    case "leaky_relu":
      return (x) => (x >= 0 ? x : alpha * x);
    case "elu":
      return (x) => (x >= 0 ? x : alpha * (Math.exp(x) - 1));
    case "selu":
      return (x) => (x >= 0 ? beta * x : beta * alpha * (Math.exp(x) - 1));
    case "softsign":
      return (x) => x / (1 + Math.abs(x));
    case "softplus":
      // log(1 + e^t) = max(t, 0) + log(1 + e^-|t|): no overflow for large t.
      return (x) => {
        const t = beta * x;
        return alpha * (Math.max(t, 0) + Math.log1p(Math.exp(-Math.abs(t))));
      };
    case "clip":
      return (x) => Math.min(beta, Math.max(alpha, x));
    case "hard_sigmoid":
      return (x) => Math.max(0, Math.min(1, alpha * x + beta));
    case "scaled_tanh":
      return (x) => alpha * Math.tanh(beta * x);
    case "thresholded_relu":
      return (x) => (x > alpha ? x : 0);
  }
}

/** Applies an activation in place over data[from, to). */
export function applyActivation(
  spec: ActivationSpec,
  data: Float32Array,
  from = 0,
  to = data.length,
): void {
  if (spec.type === "relu") {
    for (let i = from; i < to; i++) if (!(data[i] > 0)) data[i] = 0;
    return;
  }
  const f = activationFunction(spec);
  for (let i = from; i < to; i++) data[i] = f(data[i]);
}

export const activation: CpuKernel<ActivationSpec> = ({ attrs, inputs, outputs }) => {
  const x = f32(inputs[0]), y = f32(outputs[0]);
  y.set(x);
  applyActivation(attrs, y);
};
