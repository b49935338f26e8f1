import assert from "node:assert/strict";
import { N } from "../../../dsl/ir/dims.ts";
import { Network } from "../../../dsl/network.ts";
import { randomArray, rng } from "../../_util.ts";
import { buildBoth } from "./_fusion.ts";

Deno.test("foldConstants evaluates constant subgraphs at build time; outputs unchanged", async () => {
  const r = rng(41);
  const net = new Network();
  const x = net.input("x", [N, 4, 3]);
  // A weight given transposed, fixed up by a Shuffle, then scaled: all constant.
  const wT = net.addConstant([], { dims: [3, 4], values: randomArray(12, r) }).output(0);
  const w = wT.transpose([1, 0]).add(net.addConstant([], { dims: [1], values: [0.5] }).output(0));
  const y = x.matmul(w.transpose([1, 0]));
  net.markOutput(y.tanh(), "y");
  const { fused, plain } = await buildBoth(net, { x: randomArray(2 * 12, r) });
  assert.ok(plain.layers.length > fused.layers.length);
  const kinds = fused.layers.map((l) => l.kind);
  assert.deepEqual(kinds.filter((k) => k === "Shuffle" || k === "ElementWise"), []);
  const changes = fused.passes.find((p) => p.name === "foldConstants")!.changes;
  assert.equal(changes.length, 3, changes.join("\n"));
});
