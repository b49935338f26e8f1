/**
 * Activation specs, shared by the Activation layer and by the fused epilogue that Convolution,
 * Deconvolution, FullyConnected and MatrixMultiply carry (bias, activation, residual add), so
 * the builder's fusion passes fold layers into them without new layer kinds.
 */
import { z } from "zod";

export const ACTIVATION_TYPES = [
  "relu",
  "sigmoid",
  "tanh",
  "leaky_relu",
  "elu",
  "selu",
  "softsign",
  "softplus",
  "clip",
  "hard_sigmoid",
  "scaled_tanh",
  "thresholded_relu",
] as const;

export type ActivationType = typeof ACTIVATION_TYPES[number];

/** TensorRT's alpha/beta conventions: leaky_relu alpha = slope; elu alpha; selu alpha, beta
 * (= lambda); softplus alpha*log(1+exp(beta*x)); clip [alpha, beta]; hard_sigmoid
 * max(0, min(1, alpha*x+beta)); scaled_tanh alpha*tanh(beta*x); thresholded_relu x if x>alpha. */
export const activationSpec = z.object({
  type: z.enum(ACTIVATION_TYPES),
  alpha: z.number().optional(),
  beta: z.number().optional(),
});

export type ActivationSpec = z.output<typeof activationSpec>;

/** Defaults of alpha/beta per activation type, as TensorRT documents them. */
export function activationParams(spec: ActivationSpec): { alpha: number; beta: number } {
  const d: Record<ActivationType, [number, number]> = {
    relu: [0, 0],
    sigmoid: [0, 0],
    tanh: [0, 0],
    leaky_relu: [0.01, 0],
    elu: [1, 0],
    selu: [1.6732632423543772, 1.0507009873554805],
    softsign: [0, 0],
    softplus: [1, 1],
    clip: [0, 6],
    hard_sigmoid: [0.2, 0.5],
    scaled_tanh: [1, 1],
    thresholded_relu: [1, 0],
  };
  const [a, b] = d[spec.type];
  return { alpha: spec.alpha ?? a, beta: spec.beta ?? b };
}

/**
 * The epilogue: `y = act(x + bias [+ residual if "pre"]) [+ residual if "post"]`. The bias is
 * the layer's own `bias` weights; a residual is the layer's last input.
 */
export const epilogueAttrs = {
  activation: activationSpec.optional(),
  residual: z.enum(["pre", "post"]).optional(),
};
