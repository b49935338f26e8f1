import assert from "node:assert/strict";
import { N } from "../../../dsl/ir/dims.ts";
import { Network } from "../../../dsl/network.ts";
import { randomArray, rng } from "../../_util.ts";
import { buildBoth } from "./_fusion.ts";

Deno.test("foldScale folds a per-channel scale (BatchNorm-style) into convolution weights", async () => {
  const r = rng(21);
  const net = new Network();
  const x = net.input("x", [N, 2, 6, 6]);
  const c = x.conv({
    outputs: 4,
    kernel: 3,
    groups: 2,
    weights: randomArray(4 * 1 * 9, r),
    bias: randomArray(4, r),
  });
  const s = c.scale({
    mode: "channel",
    scale: randomArray(4, r, 0.5, 2),
    shift: randomArray(4, r),
  });
  net.markOutput(s.relu(), "y");
  const { fused } = await buildBoth(net, { x: randomArray(3 * 72, r) });
  assert.equal(fused.layers.length, 1, fused.layers.map((l) => l.name).join(", "));
});

Deno.test("foldScale folds a uniform scale into FullyConnected, not a scale with power", async () => {
  const r = rng(22);
  const net = new Network();
  const x = net.input("x", [N, 5]);
  const a = x.fc({ outputs: 3, weights: randomArray(15, r) }).scale({
    scale: [1.5],
    shift: [0.25],
  });
  const b = x.fc({ outputs: 3, weights: randomArray(15, r) }).scale({ scale: [1.5], power: [2] });
  net.markOutput(a, "a");
  net.markOutput(b, "b");
  const { fused } = await buildBoth(net, { x: randomArray(10, r, 0.1, 1) });
  assert.equal(fused.layers.length, 3);
});
