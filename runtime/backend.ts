/**
 * The Backend interface. A backend loads a plan (uploading weights once) and creates execution
 * contexts that own their activations. The CPU backend runs TypeScript kernels; the CUDA
 * backend runs native kernels through FFI. The engine validates everything before calling in.
 */
import type { Dims } from "../dsl/ir/dims.ts";
import type { DType, HostArray } from "../dsl/ir/dtype.ts";
import type { Manifest, PlanDevice } from "../plan/mod.ts";

/** A plan as a backend receives it: the manifest and typed views of each layer's weights. */
export interface LoadedPlan {
  manifest: Manifest;
  /** weights[layerIndex][slot] */
  weights: Record<string, HostArray>[];
  /** The raw weight section, for backends that upload it whole. */
  weightSection: Uint8Array;
}

export interface TensorInfo {
  name: string;
  dims: Dims;
  dtype: DType;
}

export interface ExecuteRequest {
  batchSize: number;
  /** Host inputs by tensor index. */
  inputs: Map<number, HostArray>;
  /** Tensor indices to return. */
  outputs: number[];
  /** Record per-layer times. */
  profile: boolean;
}

export interface ExecuteResult {
  outputs: Map<number, HostArray>;
  /** Milliseconds per layer (manifest order), when profiling. */
  layerMs?: number[];
}

/** A generation loop: the network run `steps` times, outputs fed back into inputs between runs. */
export interface LoopRequest {
  batchSize: number;
  /** Host inputs by tensor index, for the first step (inputs not fed back keep them throughout). */
  inputs: Map<number, HostArray>;
  steps: number;
  /** [output, input] tensor pairs, dims and dtypes equal: after each step the output is copied into the input. */
  feedback: [number, number][];
  /** Tensor indices whose value at every step is returned, the steps one after another. */
  collect: number[];
  profile: boolean;
}

export interface LoopResult {
  /** Per collected tensor: `steps` values of it, concatenated (step-major). */
  outputs: Map<number, HostArray>;
  /** Milliseconds per layer (manifest order) of each step, when profiling. */
  layerMs?: number[][];
}

export interface BackendContext extends Disposable {
  execute(req: ExecuteRequest): Promise<ExecuteResult>;
  /**
   * Runs a loop without a host round trip per step. Optional: the engine falls back to one
   * `execute` per step for a backend without it.
   */
  executeLoop?(req: LoopRequest): Promise<LoopResult>;
}

export interface BackendEngine extends Disposable {
  createContext(): BackendContext;
  /** Bytes the backend holds for weights. */
  readonly weightBytes: number;
}

export interface Backend {
  readonly device: PlanDevice;
  /** The layer kinds this backend has kernels for. */
  supports(kind: string): boolean;
  load(plan: LoadedPlan): BackendEngine;
}
