/** compareWithFp32: per-layer errors of a reduced-precision build against FP32. */
import assert from "node:assert/strict";
import { buildEngine } from "../../builder/build.ts";
import { compareWithFp32 } from "../../builder/compare.ts";
import { N, Network } from "../../dsl/network.ts";
import { Logger } from "../../runtime/logger.ts";
import { randomArray, rng } from "../_util.ts";

function convNet() {
  const r = rng(21);
  const net = new Network();
  const x = net.input("x", [N, 2, 6, 6]).setDynamicRange(-1, 1);
  const conv = net.addConvolution(x, {
    name: "conv",
    outputs: 3,
    kernel: 3,
    weights: randomArray(54, r),
    bias: randomArray(3, r),
  });
  conv.output(0).setDynamicRange(-4, 4);
  const relu = net.addActivation(conv.output(0), { type: "relu", name: "relu" });
  relu.output(0).setDynamicRange(0, 4);
  const pool = net.addPooling(relu.output(0), { type: "max", window: 2, name: "pool" });
  pool.output(0).setDynamicRange(0, 4);
  const fc = net.addFullyConnected(pool.output(0), {
    name: "fc",
    outputs: 5,
    weights: randomArray(60, r),
  });
  const sm = net.addSoftMax(fc.output(0), { name: "prob" });
  net.markOutput(sm.output(0), "prob");
  return net;
}

Deno.test("compareWithFp32 on a network: every layer, its precision, zero error in FP32, INT8 error small but not zero", async () => {
  const net = convNet();
  const outputsBefore = net.outputs.length;
  const x = randomArray(3 * 72, rng(22));
  const rows = await compareWithFp32(net, { x }, { device: "cpu", int8: true });
  assert.equal(net.outputs.length, outputsBefore, "the caller's network is not changed");
  assert.deepEqual(rows.map((r) => r.layer), ["conv", "relu", "pool", "fc", "prob"]);
  assert.deepEqual(rows.map((r) => r.precision), ["int8", "fp32", "fp32", "int8", "fp32"]);
  for (const r of rows) {
    assert.ok(r.maxRelError > 0 && r.maxRelError < 0.05, `${r.layer}: ${r.maxRelError}`);
    assert.ok(r.meanRelError > 0 && r.meanRelError <= r.maxRelError * 10, r.layer);
  }
  const same = await compareWithFp32(net, { x }, { device: "cpu" });
  assert.ok(same.every((r) => r.maxRelError === 0 && r.precision === "fp32"));
});

Deno.test("compareWithFp32 of one FP16 layer equals max|half(x) − x| / max|x| computed here", async () => {
  const net = new Network();
  const x = net.input("x", [N, 40]);
  const t = net.addActivation(x, { type: "tanh", name: "t" });
  t.precision = "fp16";
  net.markOutput(t.output(0), "y");
  const xv = randomArray(2 * 40, rng(23), -2, 2);
  const [row] = await compareWithFp32(net, { x: xv }, { device: "cpu", maxBatchSize: 2 });
  let maxErr = 0, maxRef = 0, sumErr = 0, sumRef = 0;
  for (const v of xv) {
    const f = Math.fround(Math.tanh(v)), hv = Math.f16round(Math.tanh(Math.f16round(v)));
    maxErr = Math.max(maxErr, Math.abs(hv - f));
    maxRef = Math.max(maxRef, Math.abs(f));
    sumErr += Math.abs(hv - f);
    sumRef += Math.abs(f);
  }
  assert.equal(row.precision, "fp16");
  assert.ok(Math.abs(row.maxRelError - maxErr / maxRef) < 1e-6, `${row.maxRelError}`);
  assert.ok(Math.abs(row.meanRelError - sumErr / sumRef) < 1e-6, `${row.meanRelError}`);
});

Deno.test("compareWithFp32 on an engine rebuilds its precisions and scales", async () => {
  const engine = await buildEngine(convNet(), {
    device: "cpu",
    int8: true,
    maxBatchSize: 2,
    logger: new Logger("error"),
  });
  const built = engine.describe().layers.filter((l) => l.kind !== "Reformat");
  const rows = await compareWithFp32(engine, { x: randomArray(2 * 72, rng(24)) }, {
    device: "cpu",
  });
  assert.deepEqual(
    rows.map((r) => [r.layer, r.precision]),
    built.map((l) => [l.name, l.precision]),
  );
  assert.ok(rows.some((r) => r.precision === "int8" && r.maxRelError > 0));
  engine[Symbol.dispose]();
});
