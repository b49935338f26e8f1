import { defineLayer, type TensorHandle } from "./_define.ts";
import { type ActivationSpec, activationSpec } from "./_epilogue.ts";

/** Activation: an elementwise nonlinearity (TensorRT IActivationLayer). */
export const Activation = defineLayer({
  kind: "Activation",
  summary: "elementwise activation (relu, sigmoid, tanh, leaky_relu, elu, clip, softplus, ...)",
  attrs: activationSpec,
  inputs: { min: 1, max: 1 },
  inferShape: ({ inputs }) => [{ dims: inputs[0].dims, dtype: inputs[0].dtype }],
  fluent: {
    activation: (t: TensorHandle, spec: ActivationSpec) => ({ inputs: [t], attrs: spec }),
    relu: (t: TensorHandle) => ({ inputs: [t], attrs: { type: "relu" } }),
    sigmoid: (t: TensorHandle) => ({ inputs: [t], attrs: { type: "sigmoid" } }),
    tanh: (t: TensorHandle) => ({ inputs: [t], attrs: { type: "tanh" } }),
    leakyRelu: (t: TensorHandle, alpha = 0.01) => ({
      inputs: [t],
      attrs: { type: "leaky_relu", alpha },
    }),
    elu: (t: TensorHandle, alpha = 1) => ({ inputs: [t], attrs: { type: "elu", alpha } }),
    clip: (t: TensorHandle, min: number, max: number) => ({
      inputs: [t],
      attrs: { type: "clip", alpha: min, beta: max },
    }),
    softplus: (t: TensorHandle) => ({ inputs: [t], attrs: { type: "softplus" } }),
  },
});
