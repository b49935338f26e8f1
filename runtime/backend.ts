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

export interface BackendContext extends Disposable {
  execute(req: ExecuteRequest): Promise<ExecuteResult>;
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
