/**
 * The Caffe importer registry (as onnx-tensorrt's builtin op importers): one importer per Caffe
 * layer type, registered in the file that defines it, with the shared helpers that keep most
 * of them to a few lines. `_build.ts` asks every layer's importer to `check` it before anything
 * is built, so every unsupported layer is reported at once.
 */
import type protobuf from "protobufjs";
import type { KilnError } from "../../errors.ts";
import type { Layer, Tensor } from "../../dsl/ir/graph.ts";
import { formatDims } from "../../dsl/ir/dims.ts";
import type { Network } from "../../dsl/network.ts";
import { type TextMessage, withDefaults } from "./text_format.ts";

/** One layer of the prototxt, V1 (`layers { type: CONVOLUTION }`) layers upgraded to this form. */
export interface CaffeLayer {
  /** Position among the prototxt's layers. */
  index: number;
  name: string;
  /** The layer type as current Caffe spells it ("Convolution"; V1 enums are translated). */
  type: string;
  bottom: string[];
  top: string[];
  /** The LayerParameter (or V1LayerParameter: its `*_param` fields have the same names and types). */
  msg: TextMessage;
  /** The Input layer standing for the deprecated `input:` header (never offered to plugins). */
  fromHeader?: boolean;
  /** Where the layer is written in the prototxt. */
  line?: number;
  column?: number;
}

/** A note or warning about the import, naming the layer and its line where there is one. */
export interface CaffeDiagnostic {
  severity: "note" | "warning";
  message: string;
  layer?: string;
  line?: number;
}

/** How a layer's weights are made up when there is no model file. */
export type RandomInit =
  /** Uniform with variance 1/fan-in (fan-in: the volume of dims[1:]). */
  | "weights"
  /** Small values around zero (biases, shifts, means). */
  | "bias"
  /** Positive values around one (scales, variances). */
  | "positive"
  /** Exactly one (BatchNorm's moving-average factor). */
  | "one";

export interface ImportContext {
  readonly net: Network;
  readonly layer: CaffeLayer;
  /** The tensors of the layer's bottoms, in order. */
  readonly inputs: Tensor[];
  /** A `*_param` message of the layer with the .proto defaults filled in. */
  param(name: string): TextMessage;
  /** Whether the prototxt sets `field` of the `name` message explicitly. */
  given(name: string, field: string): boolean;
  /** How many blobs the model file holds for this layer (0 without a model file). */
  readonly blobCount: number;
  /**
   * Blob `index` of the layer, checked to hold the volume of `dims` (Kiln's layout), or
   * seeded random values of that size when there is no model file.
   */
  blob(index: number, dims: readonly number[], init: RandomInit): Float32Array;
  /**
   * Adds a Kiln layer, named after the Caffe layer unless `name` is given (helper layers:
   * `${ctx.layer.name}/what`). Its source is the Caffe layer.
   */
  add(kind: string, inputs: Tensor[], args: Record<string, unknown>, name?: string): Layer;
  /** For a BatchNorm: the Caffe Scale layer that will be folded into the layer it makes. */
  readonly foldedScale?: CaffeLayer;
  /** For that Scale: the Kiln layer the BatchNorm made, to fold into. */
  readonly foldInto?: Layer;
  note(message: string): void;
  /** Throws a KilnError naming the layer, its type and its line. */
  fail(message: string, code?: KilnError["code"]): never;
}

export interface Importer {
  /** The Kiln layer kinds the importer builds (a kind missing from this build is reported). */
  kinds: string[];
  /** Why this layer cannot be imported (types it recognizes but settings it does not support). */
  check?(layer: CaffeLayer, param: (name: string) => TextMessage): string[];
  /** Builds the layer; returns one tensor per top (or one tensor for a single top). */
  import(ctx: ImportContext): Tensor | Tensor[];
}

export const IMPORTERS = new Map<string, Importer>();

/** Registers the importer of one or more Caffe layer types. */
export function registerImporter(types: string | string[], importer: Importer): void {
  for (const t of Array.isArray(types) ? types : [types]) {
    if (IMPORTERS.has(t)) throw new Error(`a Caffe importer for "${t}" is registered twice`);
    IMPORTERS.set(t, importer);
  }
}

/** `param(name)` for a layer, outside an import (used by checks). */
export function paramReader(
  layerType: protobuf.Type,
  layer: CaffeLayer,
): (name: string) => TextMessage {
  return (name) => {
    const f = layerType.fields[name];
    if (!f) throw new Error(`LayerParameter has no field "${name}"`);
    f.resolve();
    return withDefaults(f.resolvedType as protobuf.Type, layer.msg[name] as TextMessage);
  };
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/** Channels of an NCHW input. */
export function channels(ctx: ImportContext, i = 0): number {
  const d = ctx.inputs[i].dims;
  if (d.length !== 4) {
    ctx.fail(
      `expects a 4-D input (N, C, H, W); bottom "${ctx.layer.bottom[i]}" is ${formatDims(d)}`,
      "SHAPE_MISMATCH",
    );
  }
  return d[1] as number;
}

/** One Kiln layer of `kind` on all inputs; its output. */
export function single(ctx: ImportContext, kind: string, args: Record<string, unknown>): Tensor {
  return ctx.add(kind, ctx.inputs, args).output(0);
}

/** An importer that is one Kiln layer with attributes computed from the Caffe layer. */
export function simple(
  kind: string,
  attrs: (ctx: ImportContext) => Record<string, unknown>,
  check?: Importer["check"],
): Importer {
  return { kinds: [kind], check, import: (ctx) => single(ctx, kind, attrs(ctx)) };
}

/** Normalizes a Caffe axis (negative counts from the end) against a rank, or fails. */
export function caffeAxis(ctx: ImportContext, axis: number, rank: number, what = "axis"): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!(a >= 0 && a < rank)) ctx.fail(`${what} ${axis} is out of range for rank ${rank}`);
  return a;
}

/** Layer types that only matter for training: skipped with a note. */
export const TRAINING_ONLY_TYPES = new Set([
  "Accuracy",
  "SoftmaxWithLoss",
  "EuclideanLoss",
  "SigmoidCrossEntropyLoss",
  "HingeLoss",
  "InfogainLoss",
  "MultinomialLogisticLoss",
  "ContrastiveLoss",
  "Silence",
]);

/** Data layers: they read a database or a file; skipped with a note. */
export const DATA_TYPES = new Set([
  "Data",
  "ImageData",
  "HDF5Data",
  "HDF5Output",
  "MemoryData",
  "DummyData",
  "WindowData",
]);
