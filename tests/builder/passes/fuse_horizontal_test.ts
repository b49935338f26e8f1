import assert from "node:assert/strict";
import { Network } from "../../../dsl/network.ts";
import { randomArray, rng } from "../../_util.ts";
import { convRelu, inception, N, sameOutputs, viewCount, workingLayers } from "./_inception.ts";

const count = (kinds: string[], kind: string) => kinds.filter((k) => k === kind).length;

Deno.test("fuseHorizontal fuses an inception block's 1x1 branches into one convolution, same outputs at batch 1 and 3", async () => {
  const r = rng(21);
  const net = new Network();
  const x = net.input("x", [N, 8, 6, 6]);
  net.markOutput(inception(x, "inc", 8, [4, 3, 5, 2, 4, 3], r), "y");
  const { optimized, reference } = await sameOutputs(
    net,
    ["fuseHorizontal"],
    (b) => ({ x: randomArray(b * 8 * 36, r) }),
  );
  const rec = optimized.passes.find((p) => p.name === "fuseHorizontal")!;
  assert.equal(rec.changes.length, 1, rec.changes.join("\n"));
  // 6 convolutions + pool + concat → the three 1x1 become one fused convolution and 3 crops.
  assert.equal(rec.layersBefore, 8);
  assert.equal(rec.layersAfter, 9);
  assert.match(rec.changes[0], /fused 3 convolutions reading "x"/);
  assert.match(rec.changes[0], /channels 4\.\.7 of the fused output, read in place/);
  const fused = optimized.layers.find((l) => l.kind === "Convolution" && l.name.includes(" | "))!;
  assert.ok(fused, optimized.layers.map((l) => l.name).join(", "));
  for (const s of ["inc/1x1", "inc/3x3_reduce", "inc/5x5_reduce"]) {
    assert.ok(fused.sources.includes(s), `${s} in ${fused.sources}`);
  }
  assert.equal(fused.sources.length, 6); // each branch's conv and its fused relu
  // The crops of the reduce branches are views read in place; the 1x1 crop copies into the
  // concatenation's slice; nothing else copies.
  const kinds = workingLayers(optimized), plain = workingLayers(reference);
  assert.equal(count(plain, "Convolution"), 6);
  assert.equal(count(kinds, "Convolution"), 4);
  assert.equal(count(kinds, "Padding"), 1);
  assert.equal(kinds.length, plain.length - 1);
  assert.ok(!kinds.includes("Concatenation"));
});

Deno.test("fuseHorizontal groups only convolutions of equal geometry and activation on one input", async () => {
  const r = rng(22);
  const net = new Network();
  const x = net.input("x", [N, 4, 5, 5]);
  const z = net.input("z", [N, 4, 5, 5]);
  const ws = (o: number, k: number) => randomArray(o * 4 * k * k, r);
  const outs = [
    convRelu(x, "a1", 4, 3, 1, r), // fuses with a2 (3 + 2 channels)
    convRelu(x, "a2", 4, 2, 1, r),
    convRelu(x, "k3", 4, 2, 3, r), // other kernel
    x.conv({ name: "s2", outputs: 2, kernel: 1, stride: 2, weights: ws(2, 1) }).relu(), // stride
    x.conv({ name: "sig", outputs: 2, kernel: 1, weights: ws(2, 1) }).sigmoid(), // activation
    x.conv({ name: "g2", outputs: 2, kernel: 1, groups: 2, weights: randomArray(4, r) }).relu(),
    convRelu(z, "z1", 4, 2, 1, r), // other input
  ];
  outs.forEach((t, i) => net.markOutput(t.maxPool({ window: 2 }), `y${i}`));
  const { optimized } = await sameOutputs(net, ["fuseHorizontal"], (b) => ({
    x: randomArray(b * 100, r),
    z: randomArray(b * 100, r),
  }));
  const rec = optimized.passes.find((p) => p.name === "fuseHorizontal")!;
  assert.equal(rec.changes.length, 1, rec.changes.join("\n"));
  assert.match(rec.changes[0], /fused 2 convolutions reading "x" \("a1 \+ [^"]+", "a2 \+ [^"]+"\)/);
  // Pooling reads no views: both crops copy.
  assert.match(rec.changes[0], /copied out of channels 0\.\.3; .* copied out of channels 3\.\.5/);
  assert.equal(viewCount(optimized), 0);
});

Deno.test("fuseHorizontal keeps network outputs and bias-less branches right; crops read in place by convolutions", async () => {
  const r = rng(23);
  const net = new Network();
  const x = net.input("x", [N, 6, 4, 4]);
  const a = x.conv({ name: "a", outputs: 4, kernel: 1, weights: randomArray(24, r) }); // no bias
  const b = x.conv({
    name: "b",
    outputs: 4,
    kernel: 1,
    weights: randomArray(24, r),
    bias: randomArray(4, r),
  });
  const c = x.conv({
    name: "c",
    outputs: 4,
    kernel: 1,
    weights: randomArray(24, r),
    bias: randomArray(4, r),
  });
  net.markOutput(a, "a_out"); // a network output: its crop copies
  net.markOutput(convRelu(b, "b2", 4, 3, 3, r), "b2_out"); // read by a convolution: a view
  net.markOutput(convRelu(c, "c2", 4, 2, 1, r), "c2_out");
  const { optimized } = await sameOutputs(net, ["fuseHorizontal"], (n) => ({
    x: randomArray(n * 96, r),
  }));
  assert.equal(viewCount(optimized), 2);
  assert.equal(count(workingLayers(optimized), "Padding"), 1);
  assert.equal(count(workingLayers(optimized), "Convolution"), 3);
});

Deno.test("fuseHorizontal can be disabled by name", async () => {
  const r = rng(24);
  const net = new Network();
  const x = net.input("x", [N, 8, 6, 6]);
  net.markOutput(inception(x, "inc", 8, [4, 3, 5, 2, 4, 3], r), "y");
  const { reference } = await sameOutputs(
    net,
    ["fuseHorizontal"],
    (b) => ({ x: randomArray(b * 8 * 36, r) }),
    [2],
  );
  assert.ok(!reference.passes.some((p) => p.name === "fuseHorizontal"));
  assert.ok(!reference.layers.some((l) => l.name.includes(" | ")));
});
