/** Builds a network with and without the passes and checks both compute the same outputs. */
import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import type { HostArray } from "../../../dsl/ir/dtype.ts";
import type { Network } from "../../../dsl/network.ts";
import type { Engine } from "../../../runtime/engine.ts";
import { Logger } from "../../../runtime/logger.ts";
import { assertClose } from "../../_util.ts";

export async function buildBoth(
  net: Network,
  inputs: Record<string, HostArray>,
  maxBatchSize = 4,
): Promise<
  {
    fused: Engine;
    plain: Engine;
    fusedOut: Record<string, HostArray>;
    plainOut: Record<string, HostArray>;
  }
> {
  const logger = new Logger("error");
  const fused = await buildEngine(net, { device: "cpu", maxBatchSize, logger });
  const plain = await buildEngine(net, {
    device: "cpu",
    maxBatchSize,
    logger,
    disablePasses: "all",
  });
  const fusedOut = await fused.createContext().execute(inputs);
  const plainOut = await plain.createContext().execute(inputs);
  assert.deepEqual(Object.keys(fusedOut).sort(), Object.keys(plainOut).sort());
  for (const k of Object.keys(plainOut)) {
    assertClose(fusedOut[k] as Float32Array, plainOut[k] as Float32Array, {
      rtol: 1e-5,
      atol: 1e-6,
    }, k);
  }
  return { fused, plain, fusedOut, plainOut };
}
