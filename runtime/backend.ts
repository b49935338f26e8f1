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

/** A device address given for a binding by an `enqueue` caller (TensorRT's bindings). */
export interface DeviceAddress {
  device: Deno.PointerValue;
}

/** One run handed to `enqueue`: inputs and outputs are the caller's memory. */
export interface EnqueueRequest {
  batchSize: number;
  /** By tensor index: host arrays (pinned for a truly asynchronous copy) or device addresses. */
  inputs: Map<number, HostArray | DeviceAddress>;
  /** By tensor index: where each output is written. */
  outputs: Map<number, HostArray | DeviceAddress>;
  /** The backend's stream to run on (CUDA: an ffi Stream of the context's device). */
  stream?: unknown;
}

/** A run in flight. Either wait ends it; until then the caller's memory must stay untouched. */
export interface EnqueuedRun {
  /** Blocks until the run is done; throws a failure the device reported. */
  synchronize(): void;
  /** Resolves when the run is done (waiting off the event loop's thread). */
  done(): Promise<void>;
}

export interface BackendContext extends Disposable {
  execute(req: ExecuteRequest): Promise<ExecuteResult>;
  /** Enqueues one run and returns at once (optional: the engine falls back to `execute`). */
  enqueue?(req: EnqueueRequest): EnqueuedRun;
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
