/**
 * Shared pieces of the GPU suite (tests/gpu_main.ts runs it): the test record, engines built for
 * the CPU reference and for the GPU (activations poisoned with NaN before every run), random
 * inputs per binding dtype, and the comparison (max relative error, NaN never passes).
 */
import { type BuildConfig, buildEngine } from "../../builder/build.ts";
import { float32ToFloat16Bits, type HostArray } from "../../dsl/ir/dtype.ts";
import type { Network } from "../../dsl/network.ts";
import type { Backend } from "../../runtime/backend.ts";
import { createCudaBackend } from "../../runtime/cuda/mod.ts";
import { Engine } from "../../runtime/engine.ts";
import { Logger } from "../../runtime/logger.ts";

export interface GpuTest {
  name: string;
  /** May return a short detail line for the report. */
  fn: () => Promise<string | void> | string | void;
}

export const quiet = new Logger("error");

let poisoned: Promise<Backend> | undefined;

/** A CUDA backend whose contexts fill every activation with NaN before each run. */
export function poisonedBackend(): Promise<Backend> {
  poisoned ??= createCudaBackend(0, { poisonActivations: true });
  return poisoned;
}

/** The same network built for the CPU and for the GPU (poisoned), with the same passes. */
export async function enginePair(
  net: Network,
  config: BuildConfig,
): Promise<{ cpu: Engine; gpu: Engine }> {
  const cpu = await buildEngine(net, { ...config, device: "cpu", logger: quiet });
  using built = await buildEngine(net, { ...config, device: "cuda", logger: quiet });
  const gpu = Engine.load(built.serialize(), await poisonedBackend());
  return { cpu, gpu };
}

/** Random non-zero values for a binding of `dtype` (float16 as bits of random halves). */
export function randomInput(
  dtype: string,
  n: number,
  r: () => number,
  range: [number, number] = [-1, 1],
): HostArray {
  const [lo, hi] = range;
  const value = () => {
    let v = lo + (hi - lo) * r();
    if (v === 0) v = 1e-3;
    return v;
  };
  switch (dtype) {
    case "int32":
      return Int32Array.from({ length: n }, () => Math.round(value()) || 1);
    case "int8":
      return Int8Array.from(
        { length: n },
        () => Math.max(-128, Math.min(127, Math.round(value()))) || 1,
      );
    case "float16":
      return Uint16Array.from({ length: n }, () => float32ToFloat16Bits(value()));
    default:
      return Float32Array.from({ length: n }, value);
  }
}

/**
 * Normwise relative error: max |gpu - cpu| over max |cpu|. Both sides are FP32 with different
 * summation orders, so a dot product's rounding error scales with its terms, not with the
 * (possibly cancelled) result; per-element ratios near zero would measure the CPU's own
 * rounding. NaN on the GPU where the CPU has none is Infinity (poisoned, unwritten elements).
 * Integer and float16 outputs must match exactly.
 */
export function maxRelativeError(gpu: HostArray, cpu: HostArray): number {
  if (gpu.length !== cpu.length) return Infinity;
  if (!(cpu instanceof Float32Array)) {
    for (let i = 0; i < cpu.length; i++) if (gpu[i] !== cpu[i]) return Infinity;
    return 0;
  }
  let scale = 0, worst = 0;
  for (let i = 0; i < cpu.length; i++) {
    const c = cpu[i], g = gpu[i];
    if (Number.isNaN(c) && Number.isNaN(g)) continue;
    const d = Math.abs(g - c);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
    if (Math.abs(c) > scale) scale = Math.abs(c);
  }
  return worst === 0 ? 0 : worst / Math.max(scale, 1e-30);
}

/** Index and values of the worst element, for failure messages. */
export function worstAt(gpu: HostArray, cpu: HostArray): string {
  let at = 0, worst = -1;
  for (let i = 0; i < cpu.length; i++) {
    const d = Math.abs(gpu[i] - cpu[i]);
    const e = Number.isNaN(d) ? Infinity : d;
    if (e > worst) worst = e, at = i;
  }
  return `element ${at}: gpu ${gpu[at]}, cpu ${cpu[at]}`;
}
