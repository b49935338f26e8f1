/**
 * fuseMlp: MLP chains become one FusedMlp layer computing what the unfused layers computed
 * (checked against the same network built with the pass disabled, and against a float64
 * reference written here), at batch 1 and 3 of a symbolic batch; chains that must not fuse stay.
 */
import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import { N } from "../../../dsl/ir/dims.ts";
import { Network } from "../../../dsl/network.ts";
import type { Engine } from "../../../runtime/engine.ts";
import { Logger } from "../../../runtime/logger.ts";
import { assertClose, randomArray, rng } from "../../_util.ts";

const quiet = new Logger("error");

function build(net: Network, disablePasses: string[] | "all" = []): Promise<Engine> {
  return buildEngine(net, { device: "cpu", maxBatchSize: 4, logger: quiet, disablePasses });
}

async function run(e: Engine, x: Float32Array, name = "x"): Promise<Float32Array> {
  const out = await e.createContext().execute({ [name]: x });
  return Object.values(out)[0] as Float32Array;
}

/** Float64 reference: y = act(x·Wᵀ + b) per stage, rows × features. */
function reference(
  x: Float32Array,
  rows: number,
  stages: { w: Float32Array; b?: Float32Array; n: number; act?: (v: number) => number }[],
): Float64Array {
  let a = Float64Array.from(x);
  let k = x.length / rows;
  for (const s of stages) {
    const y = new Float64Array(rows * s.n);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < s.n; o++) {
        let acc = s.b ? s.b[o] : 0;
        for (let i = 0; i < k; i++) acc += a[r * k + i] * s.w[o * k + i];
        y[r * s.n + o] = s.act ? s.act(acc) : acc;
      }
    }
    a = y;
    k = s.n;
  }
  return a;
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const relu = (v: number) => Math.max(0, v);

Deno.test("fuseMlp: sampleMLP's 784→256→256→10 sigmoid chain becomes one layer with the same outputs", async () => {
  const r = rng(81);
  const sizes = [784, 256, 256, 10];
  const stages = [0, 1, 2].map((i) => ({
    w: randomArray(sizes[i + 1] * sizes[i], r, -0.1, 0.1),
    b: randomArray(sizes[i + 1], r),
    n: sizes[i + 1],
    act: sigmoid,
  }));
  const net = new Network();
  let t = net.input("x", [N, 784]);
  stages.forEach((s, i) => {
    t = t.fc({ name: `hidden${i}`, outputs: s.n, weights: s.w, bias: s.b }).sigmoid();
  });
  net.markOutput(t, "scores");
  const fused = await build(net);
  const unfused = await build(net, ["fuseMlp"]);
  const plain = await build(net, "all");
  assert.equal(plain.layers.length, 6);
  assert.equal(unfused.layers.length, 3);
  assert.equal(fused.layers.length, 1);
  const mlp = fused.layers[0];
  assert.equal(mlp.kind, "FusedMlp");
  assert.equal(mlp.sources.length, 6);
  assert.match(mlp.name, /^hidden0 \+ .* \+ hidden2 \+ /);
  const rec = fused.passes.find((p) => p.name === "fuseMlp")!;
  assert.equal(rec.layersBefore, 3);
  assert.equal(rec.layersAfter, 1);
  assert.match(rec.changes[0], /3 stages \(784→256→256→10 features\)/);
  for (const batch of [1, 3]) {
    const x = randomArray(batch * 784, r);
    const y = await run(fused, x);
    assertClose(y, await run(unfused, x), { rtol: 1e-5, atol: 1e-6 }, `batch ${batch} vs unfused`);
    assertClose(y, reference(x, batch, stages), { rtol: 1e-4, atol: 1e-5 }, `batch ${batch}`);
  }
});

Deno.test("fuseMlp: MatrixMultiply + constant sum + activation stages, with and without fuseEpilogue", async () => {
  const r = rng(82);
  const sizes = [12, 9, 7, 5];
  const acts = [relu, Math.tanh, undefined];
  const stages = [0, 1, 2].map((i) => ({
    w: randomArray(sizes[i + 1] * sizes[i], r),
    b: randomArray(sizes[i + 1], r),
    n: sizes[i + 1],
    act: acts[i],
  }));
  const net = new Network();
  let t = net.input("x", [N, sizes[0]]);
  stages.forEach((s, i) => {
    // B is [k × n] for stage 0 and 2, given transposed ([n × k]) for stage 1.
    const k = sizes[i];
    const transB = i === 1;
    const bValues = new Float32Array(k * s.n);
    for (let o = 0; o < s.n; o++) {
      for (let j = 0; j < k; j++) bValues[transB ? o * k + j : j * s.n + o] = s.w[o * k + j];
    }
    const b = net.addLayer("Constant", [], {
      name: `W${i}`,
      dims: transB ? [s.n, k] : [k, s.n],
      values: bValues,
    }).output(0);
    const bias = net.addLayer("Constant", [], { name: `b${i}`, dims: [1, s.n], values: s.b })
      .output(0);
    t = t.matmul(b, { name: `mm${i}`, transposeB: transB }).add(bias);
    if (i === 0) t = t.relu();
    if (i === 1) t = t.tanh();
  });
  net.markOutput(t, "y");
  for (const off of [[], ["fuseEpilogue"]]) {
    const fused = await build(net, off);
    // fuseEpilogue folds the bias constants but leaves their (now unread) Constant layers; with
    // it off, fuseMlp folds them itself and removes them with the weight matrices.
    const kinds = fused.layers.map((l) => l.kind);
    assert.deepEqual(off.length ? kinds : kinds.filter((k) => k !== "Constant"), ["FusedMlp"]);
    assert.equal(fused.layers.find((l) => l.kind === "FusedMlp")!.sources.length, 8);
    for (const batch of [1, 3]) {
      const x = randomArray(batch * sizes[0], r);
      assertClose(await run(fused, x), reference(x, batch, stages), { rtol: 1e-5, atol: 1e-5 });
    }
  }
});

Deno.test("fuseMlp: FullyConnected → Scale → Activation stages fold the scale (foldScale off too), axis > 1 leading dims", async () => {
  const r = rng(83);
  const net = new Network();
  const x = net.input("x", [N, 2, 3, 4]);
  const w0 = randomArray(6 * 12, r), b0 = randomArray(6, r);
  const sc = randomArray(6, r), sh = randomArray(6, r);
  const w1 = randomArray(5 * 6, r), b1 = randomArray(5, r);
  const h = x.fc({ name: "fc0", outputs: 6, axis: 2, weights: w0, bias: b0 })
    .scale({ name: "s0", mode: "channel", channelAxis: 2, scale: sc, shift: sh }).elu();
  const y = h.fc({ name: "fc1", outputs: 5, axis: 2, weights: w1, bias: b1 });
  net.markOutput(y, "y");
  const elu = (v: number) => (v >= 0 ? v : Math.exp(v) - 1);
  for (const off of [[], ["foldScale", "fuseEpilogue"]]) {
    const fused = await build(net, off);
    assert.deepEqual(fused.layers.map((l) => l.kind), ["FusedMlp"], off.join());
    for (const batch of [1, 3]) {
      const xs = randomArray(batch * 24, r);
      const rows = batch * 2;
      const s0 = reference(xs, rows, [{ w: w0, b: b0, n: 6 }]);
      const scaled = Float32Array.from(s0, (v, i) => elu(v * sc[i % 6] + sh[i % 6]));
      const want = reference(scaled, rows, [{ w: w1, b: b1, n: 5 }]);
      assertClose(await run(fused, xs), want, { rtol: 1e-5, atol: 1e-5 }, off.join());
    }
  }
});

Deno.test("fuseMlp leaves chains alone where an intermediate has another reader or is an output", async () => {
  const r = rng(84);
  const mk = (variant: "reader" | "output" | "single") => {
    const net = new Network();
    const x = net.input("x", [N, 8]);
    const h = x.fc({ name: "fc0", outputs: 8, weights: randomArray(64, r) }).relu();
    if (variant === "single") {
      net.markOutput(h, "y");
      return net;
    }
    const y = h.fc({ name: "fc1", outputs: 4, weights: randomArray(32, r) });
    net.markOutput(y, "y");
    if (variant === "reader") net.markOutput(h.sigmoid(), "z");
    if (variant === "output") net.markOutput(h, "h");
    return net;
  };
  for (const v of ["reader", "output", "single"] as const) {
    const net = mk(v);
    const fused = await build(net);
    assert.ok(!fused.layers.some((l) => l.kind === "FusedMlp"), v);
    assert.equal(fused.passes.find((p) => p.name === "fuseMlp")!.changes.length, 0);
    const plain = await build(net, "all");
    const xs = randomArray(3 * 8, r);
    const a = await fused.createContext().execute({ x: xs });
    const b = await plain.createContext().execute({ x: xs });
    for (const k of Object.keys(b)) assertClose(a[k] as Float32Array, b[k] as Float32Array);
  }
});

Deno.test("fuseMlp: a layer holds eight stages at most; the ninth stays a FullyConnected", async () => {
  const r = rng(85);
  const net = new Network();
  let t = net.input("x", [N, 4]);
  const ws: Float32Array[] = [];
  for (let i = 0; i < 9; i++) {
    const w = randomArray(16, r, -0.7, 0.7);
    ws.push(w);
    t = t.fc({ name: `fc${i}`, outputs: 4, weights: w }).tanh();
  }
  net.markOutput(t, "y");
  const fused = await build(net);
  // Eight stages fit one layer; the ninth FC stays a FullyConnected (a chain needs two).
  assert.deepEqual(fused.layers.map((l) => l.kind), ["FusedMlp", "FullyConnected"]);
  const off = await build(net, ["fuseMlp"]);
  assert.equal(off.layers.length, 9);
  const stages = ws.map((w) => ({ w, n: 4, act: Math.tanh }));
  const xs = randomArray(3 * 4, r);
  assertClose(await run(fused, xs), reference(xs, 3, stages), { rtol: 1e-5, atol: 1e-6 });
});
