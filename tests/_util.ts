/** Shared helpers for Kiln's tests: a seeded RNG, random arrays, tolerance checks, CPU runs. */
import assert from "node:assert/strict";
import { buildEngine } from "../builder/build.ts";
import type { HostArray } from "../dsl/ir/dtype.ts";
import type { Network } from "../dsl/network.ts";
import { Logger } from "../runtime/logger.ts";

/** mulberry32: a small, fast, seeded PRNG returning floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [lo, hi), none exactly zero (zeros hide indexing bugs). */
export function randomArray(n: number, r: () => number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = lo + (hi - lo) * r();
    if (v === 0) v = 1e-3;
    a[i] = v;
  }
  return a;
}

export interface Tolerance {
  rtol?: number;
  atol?: number;
}

/**
 * Asserts |actual - expected| <= atol + rtol·|expected| elementwise (NaN never passes unless
 * both are NaN), reporting the first offending index and the worst error.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance = {},
  what = "values",
): void {
  const rtol = tol.rtol ?? 1e-5, atol = tol.atol ?? 1e-6;
  assert.equal(
    actual.length,
    expected.length,
    `${what}: length ${actual.length} != ${expected.length}`,
  );
  let worst = 0, worstAt = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    const err = Math.abs(a - e);
    const ok = err <= atol + rtol * Math.abs(e);
    if (!ok || Number.isNaN(err)) {
      if (!(err <= worst)) {
        worst = err;
        worstAt = i;
      }
    }
  }
  if (worstAt >= 0) {
    assert.fail(
      `${what}: element ${worstAt} is ${actual[worstAt]}, expected ${expected[worstAt]} ` +
        `(error ${worst}, tolerance atol ${atol} + rtol ${rtol})`,
    );
  }
}

/** Builds `net` on the CPU and runs it once. */
export async function runOnCpu(
  net: Network,
  inputs: Record<string, HostArray>,
  options: { maxBatchSize?: number; batchSize?: number } = {},
): Promise<Record<string, HostArray>> {
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: options.maxBatchSize ?? 8,
    logger: new Logger("error"),
  });
  using ctx = engine.createContext();
  try {
    return await ctx.execute(inputs, { batchSize: options.batchSize });
  } finally {
    engine[Symbol.dispose]();
  }
}
