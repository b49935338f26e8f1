import assert from "node:assert/strict";
import { N } from "../../../dsl/ir/dims.ts";
import { Network } from "../../../dsl/network.ts";
import { randomArray, rng } from "../../_util.ts";
import { buildBoth } from "./_fusion.ts";

Deno.test("eliminateUnused and removeIdentity drop dead layers and plain copies", async () => {
  const r = rng(31);
  const net = new Network();
  const x = net.input("x", [N, 6]);
  x.fc({ name: "dead", outputs: 2, weights: randomArray(12, r) }).relu(); // nothing reads it
  const y = x.identity().softmax().identity();
  net.markOutput(y, "y");
  const { fused, plain } = await buildBoth(net, { x: randomArray(12, r) });
  assert.equal(plain.layers.length, 5);
  assert.deepEqual(fused.layers.map((l) => l.kind), ["SoftMax"]);
  assert.ok(fused.bindings.some((b) => b.name === "y" && !b.isInput));
  const changes = fused.passes.flatMap((p) => p.changes).join("\n");
  assert.match(changes, /removed FullyConnected "dead"/);
});

Deno.test("disablePasses rejects an unknown pass name", async () => {
  const net = new Network();
  net.markOutput(net.input("x", [N, 2]).relu(), "y");
  const { buildEngine } = await import("../../../builder/build.ts");
  await assert.rejects(
    () => buildEngine(net, { device: "cpu", disablePasses: ["fuseEverything"] }),
    /unknown pass "fuseEverything"/,
  );
});
