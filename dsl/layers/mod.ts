/**
 * The list of layer kinds: one line per kind. The Network's `addX` methods and the fluent
 * methods on tensors are typed from this list.
 */
import { Activation } from "./activation.ts";
import { Concatenation } from "./concatenation.ts";
import { Constant } from "./constant.ts";
import { Convolution } from "./convolution.ts";
import { Deconvolution } from "./deconvolution.ts";
import { ElementWise } from "./elementwise.ts";
import { FullyConnected } from "./fully_connected.ts";
import { FusedElementwise } from "./fused_elementwise.ts";
import { FusedMlp } from "./fused_mlp.ts";
import { Gather } from "./gather.ts";
import { Identity } from "./identity.ts";
import { LRN } from "./lrn.ts";
import { MatrixMultiply } from "./matrix_multiply.ts";
import { Padding } from "./padding.ts";
import { Plugin } from "./plugin.ts";
import { Pooling } from "./pooling.ts";
import { RaggedSoftMax } from "./ragged_softmax.ts";
import { Reduce } from "./reduce.ts";
import { Reformat } from "./reformat.ts";
import { RNNv2 } from "./rnn_v2.ts";
import { Scale } from "./scale.ts";
import { Shuffle } from "./shuffle.ts";
import { SoftMax } from "./softmax.ts";
import { TopK } from "./topk.ts";
import { Unary } from "./unary.ts";

export const LAYERS = {
  Activation,
  Concatenation,
  Constant,
  Convolution,
  Deconvolution,
  ElementWise,
  FullyConnected,
  FusedElementwise,
  FusedMlp,
  Gather,
  Identity,
  LRN,
  MatrixMultiply,
  Padding,
  Plugin,
  Pooling,
  RaggedSoftMax,
  Reduce,
  Reformat,
  RNNv2,
  Scale,
  Shuffle,
  SoftMax,
  TopK,
  Unary,
} as const;

export type LayerDefs = typeof LAYERS;
export type LayerKind = keyof LayerDefs;

export function isLayerKind(kind: string): kind is LayerKind {
  return Object.hasOwn(LAYERS, kind);
}
