/**
 * Helpers of the horizontal-fusion and concat-elision tests: a small inception block with random
 * weights, and a check that a network computes the same outputs with and without some passes at
 * several batch sizes of the symbolic batch.
 */
import assert from "node:assert/strict";
import { type BuildConfig, buildEngine } from "../../../builder/build.ts";
import { N } from "../../../dsl/ir/dims.ts";
import type { Tensor } from "../../../dsl/ir/graph.ts";
import type { Network } from "../../../dsl/network.ts";
import { readPlan } from "../../../plan/mod.ts";
import type { Engine } from "../../../runtime/engine.ts";
import { Logger } from "../../../runtime/logger.ts";
import { isNoOpLayer } from "../../../plan/views.ts";
import { assertClose, randomArray } from "../../_util.ts";

export { N };

/** conv + relu with random weights and bias. */
export function convRelu(
  x: Tensor,
  name: string,
  inC: number,
  outputs: number,
  kernel: number,
  r: () => number,
): Tensor {
  return x.conv({
    name,
    outputs,
    kernel,
    padding: (kernel - 1) / 2,
    weights: randomArray(outputs * inC * kernel * kernel, r),
    bias: randomArray(outputs, r),
  }).relu();
}

/**
 * GoogLeNet's inception block in small: 1x1, 1x1 → 3x3, 1x1 → 5x5 and 3x3 max pool → 1x1
 * branches, concatenated along the channels. Channel counts: [a, b, b3, c, c5, d].
 */
export function inception(
  x: Tensor,
  name: string,
  inC: number,
  ch: [number, number, number, number, number, number],
  r: () => number,
): Tensor {
  const [a, b, b3, c, c5, d] = ch;
  const one = convRelu(x, `${name}/1x1`, inC, a, 1, r);
  const three = convRelu(
    convRelu(x, `${name}/3x3_reduce`, inC, b, 1, r),
    `${name}/3x3`,
    b,
    b3,
    3,
    r,
  );
  const five = convRelu(
    convRelu(x, `${name}/5x5_reduce`, inC, c, 1, r),
    `${name}/5x5`,
    c,
    c5,
    5,
    r,
  );
  const pool = x.maxPool({ name: `${name}/pool`, window: 3, stride: 1, padding: 1 });
  const proj = convRelu(pool, `${name}/pool_proj`, inC, d, 1, r);
  return one.concat([three, five, proj], { axis: 1 });
}

/**
 * Builds `net` on the CPU with every pass and with `disablePasses`, runs both at each batch
 * (inputs drawn per batch by `inputs`), and checks the outputs agree.
 */
export async function sameOutputs(
  net: Network,
  disablePasses: readonly string[] | "all",
  inputs: (batch: number) => Record<string, Float32Array>,
  batches: number[] = [1, 3],
  config: BuildConfig = {},
): Promise<{ optimized: Engine; reference: Engine }> {
  const logger = new Logger("error");
  const maxBatchSize = Math.max(...batches);
  const base = { ...config, device: "cpu", maxBatchSize, logger } as const;
  const optimized = await buildEngine(net, base);
  const reference = await buildEngine(net, { ...base, disablePasses });
  using a = optimized.createContext();
  using b = reference.createContext();
  for (const batch of batches) {
    const x = inputs(batch);
    const got = await a.execute(x, { batchSize: batch });
    const want = await b.execute(x, { batchSize: batch });
    assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort());
    for (const k of Object.keys(want)) {
      const w = want[k] as Float32Array;
      assert.ok(w.some((v) => v !== 0), `${k} is all zeros at batch ${batch}: a weak test`);
      assertClose(got[k] as Float32Array, w, { rtol: 1e-4, atol: 1e-5 }, `${k} at batch ${batch}`);
    }
  }
  return { optimized, reference };
}

/** The kinds of an engine's layers that do work at run time (no-ops over views left out). */
export function workingLayers(e: Engine): string[] {
  const m = readPlan(e.serialize()).manifest;
  return m.layers.filter((l) => !isNoOpLayer(l, m.tensors)).map((l) => l.kind);
}

/** Tensors of an engine's plan that are views. */
export function viewCount(e: Engine): number {
  return readPlan(e.serialize()).manifest.tensors.filter((t) => t.view).length;
}
