/**
 * The generic op harness: every case of op_cases.ts on the GPU against the CPU reference, at
 * batch 1, 3 and the case's maximum, twice per batch (the second run replays the captured graph
 * with new inputs), activations poisoned with NaN before each GPU run. FP32 must agree to a max
 * relative error of 1e-4; integer and float16 outputs exactly.
 */
import assert from "node:assert/strict";
import { itemVolume } from "../../dsl/ir/dims.ts";
import type { HostArray } from "../../dsl/ir/dtype.ts";
import { Network } from "../../dsl/network.ts";
import { CUDA_KERNELS } from "../../runtime/cuda/mod.ts";
import { rng } from "../_util.ts";
import { enginePair, type GpuTest, maxRelativeError, randomInput, worstAt } from "./_harness.ts";
import { OP_CASES, type OpCase } from "./op_cases.ts";

export const TOLERANCE = 1e-4;

function seedOf(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}

async function runCase(kind: string, c: OpCase): Promise<string> {
  const r = rng(seedOf(`${kind}/${c.name}`));
  const net = new Network();
  c.build(net, r);
  // Passes off: each case exercises its own kernel exactly as written.
  const { cpu, gpu } = await enginePair(net, { maxBatchSize: c.maxBatch, disablePasses: "all" });
  let worst = 0;
  try {
    using cctx = cpu.createContext();
    using gctx = gpu.createContext();
    const batches = [...new Set([1, 3, c.maxBatch])].filter((b) => b <= c.maxBatch);
    for (const batch of batches) {
      for (let rep = 0; rep < 2; rep++) {
        const inputs: Record<string, HostArray> = {};
        for (const b of cpu.bindings.filter((b) => b.isInput)) {
          const n = itemVolume(b.shape) * (b.shape[0] === "N" ? batch : 1);
          inputs[b.name] = c.input?.(b.name, b.dtype, n, r) ?? randomInput(b.dtype, n, r, c.range);
        }
        const want = await cctx.execute(inputs, { batchSize: batch });
        const got = await gctx.execute(inputs, { batchSize: batch });
        for (const [name, expected] of Object.entries(want)) {
          if (expected instanceof Float32Array) {
            assert.ok(
              !expected.some(Number.isNaN),
              `case "${c.name}" produces NaN on the CPU: pick inputs that do not`,
            );
          }
          const actual = got[name];
          assert.equal(actual.constructor, expected.constructor, `output ${name} type`);
          const err = maxRelativeError(actual, expected);
          if (!(err <= TOLERANCE)) {
            assert.fail(
              `batch ${batch}, run ${
                rep + 1
              }, output "${name}": max relative error ${err} > ${TOLERANCE} (${
                worstAt(actual, expected)
              })`,
            );
          }
          worst = Math.max(worst, err);
        }
      }
    }
  } finally {
    cpu[Symbol.dispose]();
    gpu[Symbol.dispose]();
  }
  return `max rel err ${worst.toExponential(1)}`;
}

/**
 * Kinds the builder creates (fusions, precision reformats) rather than a user: their GPU-vs-CPU
 * cases live in the suites of the passes that make them.
 */
const COVERED_ELSEWHERE: Record<string, string> = {
  FusedMlp: "tests/gpu/fusion.ts",
  FusedElementwise: "tests/gpu/fusion.ts",
  Reformat: "tests/gpu/precision.ts",
};

export function opTests(): GpuTest[] {
  const tests: GpuTest[] = [{
    name: "op harness has cases for every layer kind the CUDA backend supports",
    fn() {
      const missing = Object.keys(CUDA_KERNELS).filter((k) =>
        !OP_CASES[k]?.length && !COVERED_ELSEWHERE[k]
      );
      assert.deepEqual(missing, [], `kinds without cases: ${missing.join(", ")}`);
      // A suite named here must at least build networks of that kind.
      for (const [kind, file] of Object.entries(COVERED_ELSEWHERE)) {
        const source = Deno.readTextFileSync(new URL(`../../${file}`, import.meta.url));
        assert.ok(source.includes(`"${kind}"`), `${file} does not mention "${kind}"`);
      }
    },
  }];
  for (const [kind, cases] of Object.entries(OP_CASES)) {
    for (const c of cases) {
      tests.push({ name: `op ${kind}: ${c.name}`, fn: () => runCase(kind, c) });
    }
  }
  return tests;
}
