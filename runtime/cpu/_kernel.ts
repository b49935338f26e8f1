/** What a CPU kernel receives: concrete shapes (batch substituted) and host arrays. */
import type { HostArray } from "../../dsl/ir/dtype.ts";

export interface HostTensor {
  data: HostArray;
  dims: number[];
  /**
   * Elements from one batch item (dim 0) to the next when the tensor is a view inside a wider
   * tensor (plan/views.ts); undefined when dense. Only VIEW_WRITERS/VIEW_READERS kernels see it.
   */
  batchStride?: number;
}

export interface CpuKernelArgs<A = Record<string, unknown>> {
  layer: string;
  attrs: A;
  weights: Record<string, HostArray>;
  inputs: HostTensor[];
  outputs: HostTensor[];
}

// deno-lint-ignore no-explicit-any
export type CpuKernel<A = any> = (args: CpuKernelArgs<A>) => void;

export function f32(t: HostTensor): Float32Array {
  return t.data as Float32Array;
}
