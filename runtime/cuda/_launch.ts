/** What a CUDA kernel-table entry receives and how it launches (shared by the entry files). */
import type { DType } from "../../dsl/ir/dtype.ts";
import { activationParams, type ActivationSpec } from "../../dsl/layers/_epilogue.ts";
import {
  ACTIVATION_CODE,
  check,
  type NativeLibrary,
  RESIDUAL_CODE,
  type Stream,
} from "../../ffi/mod.ts";
import type { Manifest, ManifestLayer } from "../../plan/mod.ts";

export interface LaunchTensor {
  ptr: Deno.PointerValue;
  /** Concrete dims at this batch. */
  dims: number[];
  dtype: DType;
  /**
   * Elements from one batch item to the next when the tensor is a view inside a wider tensor
   * (plan/views.ts); undefined when dense. Only VIEW_WRITERS/VIEW_READERS kernels see views.
   */
  batchStride?: number;
}

export interface LaunchArgs {
  lib: NativeLibrary;
  stream: Stream;
  layer: ManifestLayer;
  inputs: LaunchTensor[];
  outputs: LaunchTensor[];
  /** Device address of each weight slot present. */
  weights: Record<string, Deno.PointerValue>;
  /** The context's scratch memory (CudaKernel.usesWorkspace). */
  workspace: { ptr: Deno.PointerValue; bytes: number };
  /**
   * This layer's error word (two int32 in device memory, zeroed before each run) for kernels
   * with `describeError`; null otherwise. See kiln.h on data-dependent failures.
   */
  error: Deno.PointerValue;
}

export interface CudaKernel {
  /** Whether launches take the context's workspace (split-K GEMMs). */
  usesWorkspace?: boolean;
  /**
   * Workspace bytes the layer's launches need at the plan's largest batch, when more than the
   * GEMM split-K scratch (`gemmBytes`): kernels keeping intermediates there (FusedMlp).
   */
  workspaceBytes?(layer: ManifestLayer, manifest: Manifest, gemmBytes: number): number;
  /** Why this layer cannot run on the GPU (checked once at load), or undefined. */
  unsupported?(layer: ManifestLayer, manifest?: Manifest): string | undefined;
  /** Enqueues the layer on `args.stream`. */
  launch(args: LaunchArgs): void;
  /**
   * For kernels that report data-dependent failures (an index out of range) through their error
   * word: the message for `element` (the word's 1-based value less one) holding `value`, given
   * the layer's concrete input dims. The run then fails with a KilnError naming the layer.
   */
  describeError?(
    layer: ManifestLayer,
    inputDims: number[][],
    element: number,
    value: number,
  ): string;
}

type Symbols = NativeLibrary["symbols"];
type LaunchSymbol = {
  [K in keyof Symbols]: K extends `kiln_launch_${string}` ? K : never;
}[keyof Symbols];

export function launch(
  args: LaunchArgs,
  symbol: LaunchSymbol,
  params: Uint8Array<ArrayBuffer>,
): void {
  const st = args.lib.symbols[symbol](params, args.stream.handle);
  check(args.lib, st, `${symbol} (layer "${args.layer.name}")`);
}

/** Kernels here compute in float32: other weight dtypes are a load-time diagnostic. */
export function float32Weights(layer: ManifestLayer): string | undefined {
  for (const [slot, w] of Object.entries(layer.weights)) {
    if (w.dtype !== "float32") return `weights "${slot}" are ${w.dtype}; the kernel reads float32`;
  }
  return undefined;
}

/** A device address `bytes` further on. */
export function offsetPointer(p: Deno.PointerValue, bytes: number): Deno.PointerValue {
  return bytes === 0 || p === null ? p : Deno.UnsafePointer.offset(p, bytes);
}

export interface EpilogueAttrs {
  activation?: ActivationSpec;
  residual?: "pre" | "post";
}

/** The epilogue fields of a kernel struct from a layer's fused activation and residual. */
export function epilogueFields(a: EpilogueAttrs, inputs: LaunchTensor[]) {
  const act = a.activation ? activationParams(a.activation) : { alpha: 0, beta: 0 };
  return {
    act: a.activation ? ACTIVATION_CODE[a.activation.type] : 0,
    alpha: act.alpha,
    beta: act.beta,
    residual_mode: RESIDUAL_CODE[a.residual ?? "none"],
    residual: a.residual ? inputs[inputs.length - 1].ptr : null,
  };
}
