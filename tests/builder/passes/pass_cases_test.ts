/**
 * The networks of the GPU pass-equivalence suite (tests/gpu/pass_equivalence.ts), on the CPU:
 * each pass fires on its network, and the network built with all passes computes what it does
 * with none, at batch 1 and 3 of the symbolic batch (rtol 1e-5).
 */
import assert from "node:assert/strict";
import { PASSES } from "../../../builder/passes/mod.ts";
import { randomArray, rng } from "../../_util.ts";
import { PASS_CASES } from "../../gpu/pass_equivalence.ts";
import { buildBoth } from "./_fusion.ts";

Deno.test("every pass has a case network in the GPU pass-equivalence suite", () => {
  for (const p of PASSES) assert.ok(PASS_CASES.some((c) => c.pass === p.name), p.name);
});

for (const c of PASS_CASES) {
  Deno.test(`pass case ${c.pass}: fires, and all passes equal none on the CPU`, async () => {
    const r = rng(5);
    for (const batch of [1, 3]) {
      const net = c.build();
      const inputs = Object.fromEntries(
        net.inputs.map((t) => {
          const n = t.dims.reduce<number>((a, d) => a * (d === "N" ? batch : d), 1);
          return [t.name, randomArray(n, r)];
        }),
      );
      const { fused } = await buildBoth(net, inputs, 3);
      const record = fused.passes.find((p) => p.name === c.pass);
      assert.ok(record && record.changes.length > 0, `${c.pass} did not fire`);
    }
  });
}
