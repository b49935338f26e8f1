/**
 * fuseElementwiseChain: chains of Unary/Activation/ElementWise/Scale layers on one shape become
 * one FusedElementwise layer computing what the layers computed (checked against the same
 * network with the pass disabled and against a float64 reference written here), at batch 1 and
 * 3 of a symbolic batch; chains that must not fuse stay as they are.
 */
import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import { N } from "../../../dsl/ir/dims.ts";
import { Network } from "../../../dsl/network.ts";
import type { Engine } from "../../../runtime/engine.ts";
import { Logger, MemoryLogger } from "../../../runtime/logger.ts";
import { assertClose, randomArray, rng } from "../../_util.ts";

const quiet = new Logger("error");

function build(net: Network, disablePasses: string[] | "all" = []): Promise<Engine> {
  return buildEngine(net, { device: "cpu", maxBatchSize: 4, logger: quiet, disablePasses });
}

async function outputs(e: Engine, inputs: Record<string, Float32Array>) {
  return await e.createContext().execute(inputs) as Record<string, Float32Array>;
}

Deno.test("fuseElementwiseChain: unary, constant add, scale, activation, tensor product and reversed ops run as one layer", async () => {
  const r = rng(91);
  const C = 3, H = 2, W = 4;
  const net = new Network();
  const x = net.input("x", [N, C, H, W]);
  const other = net.input("other", [N, C, H, W]);
  const bias = randomArray(C, r);
  const k = net.addLayer("Constant", [], { name: "bias", dims: [C, 1, 1], values: bias }).output(0);
  const sc = randomArray(C, r), sh = randomArray(C, r);
  const pw = Float32Array.from({ length: C }, (_, c) => (c % 2 ? 2 : 1));
  const half = net.addLayer("Constant", [], { name: "half", dims: [1], values: [0.5] }).output(0);
  const row = randomArray(W, r, 0.5, 1.5);
  const rowK = net.addLayer("Constant", [], { name: "row", dims: [W], values: row }).output(0);
  const a = x.exp().add(k)
    .scale({ name: "sc", mode: "channel", channelAxis: 1, scale: sc, shift: sh, power: pw })
    .relu();
  const b = other.mul(a); // the chain's value on the right
  const c = half.sub(b.abs()); // reversed: constant - value
  const y = c.div(rowK).clip(-0.75, 0.4);
  net.markOutput(y, "y");

  const fused = await build(net);
  const off = await build(net, ["fuseElementwiseChain"]);
  const plain = await build(net, "all");
  assert.equal(plain.layers.length, 12); // 3 constants + 9 elementwise layers
  assert.deepEqual(fused.layers.map((l) => l.kind), ["FusedElementwise"]);
  assert.equal(fused.layers[0].sources.length, 9);
  assert.match(fused.layers[0].name, / \+ sc \+ /);
  const rec = fused.passes.find((p) => p.name === "fuseElementwiseChain")!;
  assert.match(rec.changes[0], /^fused 9 elementwise layers/);
  assert.match(
    rec.changes[0],
    /exp, sum constant, prod constant, sum constant, pow constant, relu/,
  );

  for (const batch of [1, 3]) {
    const n = batch * C * H * W;
    const inputs = { x: randomArray(n, r), other: randomArray(n, r) };
    const got = (await outputs(fused, inputs)).y;
    assertClose(got, (await outputs(off, inputs)).y, { rtol: 1e-6, atol: 1e-7 }, "vs unfused");
    const want = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const ch = Math.floor(i / (H * W)) % C;
      let v = Math.exp(inputs.x[i]) + bias[ch];
      v = Math.pow(v * sc[ch] + sh[ch], pw[ch]);
      v = Math.max(v, 0);
      v = inputs.other[i] * v;
      v = 0.5 - Math.abs(v);
      v = v / row[i % W];
      want[i] = Math.min(0.4, Math.max(-0.75, v));
    }
    assertClose(got, want, { rtol: 1e-5, atol: 1e-6 }, `batch ${batch}`);
  }
});

Deno.test("fuseElementwiseChain: a chain may start with a sum of two tensors and reread its own input", async () => {
  const r = rng(92);
  const net = new Network();
  const a = net.input("a", [N, 5]);
  const b = net.input("b", [N, 5]);
  const s = a.add(b).tanh().sub(a).sigmoid();
  net.markOutput(s, "y");
  const fused = await build(net);
  assert.deepEqual(fused.layers.map((l) => l.kind), ["FusedElementwise"]);
  for (const batch of [1, 3]) {
    const inputs = { a: randomArray(batch * 5, r), b: randomArray(batch * 5, r) };
    const got = (await outputs(fused, inputs)).y;
    const want = inputs.a.map((v, i) => 1 / (1 + Math.exp(-(Math.tanh(v + inputs.b[i]) - v))));
    assertClose(got, want, { rtol: 1e-5, atol: 1e-6 });
  }
});

Deno.test("fuseElementwiseChain leaves layers alone: second readers, marked outputs, broadcasts that grow the shape", async () => {
  const r = rng(93);
  const cases: Record<string, () => Network> = {
    reader: () => {
      const net = new Network();
      const x = net.input("x", [N, 6]);
      const e = x.exp();
      net.markOutput(e.relu(), "y");
      net.markOutput(e.neg(), "z");
      return net;
    },
    output: () => {
      const net = new Network();
      const x = net.input("x", [N, 6]);
      const e = x.exp();
      net.markOutput(e, "e");
      net.markOutput(e.relu(), "y");
      return net;
    },
    broadcast: () => {
      const net = new Network();
      const x = net.input("x", [N, 1, 6]);
      const big = net.input("big", [N, 3, 6]);
      net.markOutput(x.exp().add(big), "y");
      return net;
    },
  };
  for (const [name, mk] of Object.entries(cases)) {
    const net = mk();
    const fused = await build(net);
    assert.ok(!fused.layers.some((l) => l.kind === "FusedElementwise"), name);
    const plain = await build(net, "all");
    const inputs: Record<string, Float32Array> = { x: randomArray(3 * 6, r) };
    if (name === "broadcast") inputs.big = randomArray(3 * 18, r);
    const a = await outputs(fused, inputs), b = await outputs(plain, inputs);
    for (const k of Object.keys(b)) assertClose(a[k], b[k], {}, `${name} ${k}`);
  }
});

Deno.test("fuseElementwiseChain can be disabled by name and logs what it fused", async () => {
  const net = new Network();
  const x = net.input("x", [N, 4]);
  net.markOutput(x.exp().log(), "y");
  const logger = new MemoryLogger();
  const on = await buildEngine(net, { device: "cpu", logger });
  const lines = logger.messages.map((m) => m.message);
  assert.equal(on.layers.length, 1);
  assert.ok(
    lines.some((l) => /fuseElementwiseChain: fused 2 elementwise layers/.test(l)),
    lines.join("\n"),
  );
  const off = await build(net, ["fuseElementwiseChain"]);
  assert.equal(off.layers.length, 2);
});
