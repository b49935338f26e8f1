import assert from "node:assert/strict";
import { N } from "../../../dsl/ir/dims.ts";
import { Network } from "../../../dsl/network.ts";
import { randomArray, rng } from "../../_util.ts";
import { buildBoth } from "./_fusion.ts";

Deno.test("fuseEpilogue folds conv + bias add + residual + relu into one layer with the same outputs", async () => {
  const r = rng(11);
  const net = new Network();
  const x = net.input("x", [N, 3, 8, 8]);
  const conv = x.conv({
    name: "conv1",
    outputs: 3,
    kernel: 3,
    padding: 1,
    weights: randomArray(81, r),
    bias: randomArray(3, r),
  });
  const k = net.addLayer("Constant", [], {
    name: "b",
    dims: [3, 1, 1],
    dtype: "float32",
    values: randomArray(3, r),
  });
  const biased = conv.add(k.output(0));
  const res = biased.add(x);
  const y = res.relu();
  net.markOutput(y, "y");
  const { fused, plain } = await buildBoth(net, { x: randomArray(2 * 3 * 64, r) });
  assert.equal(plain.layers.length, 5);
  assert.equal(fused.layers.length, 2, fused.layers.map((l) => l.name).join(", ")); // constant + fused conv
  const conv1 = fused.layers.find((l) => l.kind === "Convolution")!;
  assert.deepEqual(conv1.sources.length, 4);
  assert.match(conv1.name, /^conv1 \+ /);
});

Deno.test("fuseEpilogue: activation first, then the residual add goes after it (post)", async () => {
  const r = rng(12);
  const net = new Network();
  const x = net.input("x", [N, 16]);
  const h = x.fc({ outputs: 16, weights: randomArray(256, r), bias: randomArray(16, r) }).sigmoid();
  net.markOutput(h.add(x), "y");
  const { fused } = await buildBoth(net, { x: randomArray(3 * 16, r) });
  assert.equal(fused.layers.length, 1);
  assert.equal(fused.passes.find((p) => p.name === "fuseEpilogue")!.changes.length, 2);
});

Deno.test("fuseEpilogue leaves a layer alone when its output has another reader or is an output", async () => {
  const r = rng(13);
  const net = new Network();
  const x = net.input("x", [N, 8]);
  const h = x.fc({ outputs: 8, weights: randomArray(64, r) });
  net.markOutput(h, "h");
  net.markOutput(h.relu(), "y");
  const { fused } = await buildBoth(net, { x: randomArray(8, r) });
  assert.equal(fused.layers.length, 2);
});
