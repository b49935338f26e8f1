/** The CPU kernel registry: one line per layer kind. */
import type { CpuKernel } from "./_kernel.ts";
import { activation } from "./activation.ts";
import { concatenation } from "./concatenation.ts";
import { constant } from "./constant.ts";
import { convolution } from "./convolution.ts";
import { deconvolution } from "./deconvolution.ts";
import { elementwise } from "./elementwise.ts";
import { fullyConnected } from "./fully_connected.ts";
import { fusedElementwise } from "./fused_elementwise.ts";
import { fusedMlp } from "./fused_mlp.ts";
import { gather } from "./gather.ts";
import { identity } from "./identity.ts";
import { lrn } from "./lrn.ts";
import { matrixMultiply } from "./matrix_multiply.ts";
import { padding } from "./padding.ts";
import { plugin } from "./plugin.ts";
import { pooling } from "./pooling.ts";
import { raggedSoftmax } from "./ragged_softmax.ts";
import { reduce } from "./reduce.ts";
import { reformat } from "./reformat.ts";
import { rnnV2 } from "./rnn_v2.ts";
import { scale } from "./scale.ts";
import { shuffle } from "./shuffle.ts";
import { softmax } from "./softmax.ts";
import { topk } from "./topk.ts";
import { unary } from "./unary.ts";

export const CPU_KERNELS: Record<string, CpuKernel> = {
  Activation: activation,
  Concatenation: concatenation,
  Constant: constant,
  Convolution: convolution,
  Deconvolution: deconvolution,
  ElementWise: elementwise,
  FullyConnected: fullyConnected,
  FusedElementwise: fusedElementwise,
  FusedMlp: fusedMlp,
  Gather: gather,
  Identity: identity,
  LRN: lrn,
  MatrixMultiply: matrixMultiply,
  Padding: padding,
  Plugin: plugin,
  Pooling: pooling,
  RaggedSoftMax: raggedSoftmax,
  Reduce: reduce,
  Reformat: reformat,
  RNNv2: rnnV2,
  Scale: scale,
  Shuffle: shuffle,
  SoftMax: softmax,
  TopK: topk,
  Unary: unary,
};
