import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import { Network } from "../../../dsl/network.ts";
import { KilnError } from "../../../errors.ts";
import { parseCaffe } from "../../../parsers/caffe/mod.ts";
import { readPlan, writePlan } from "../../../plan/mod.ts";
import { Engine } from "../../../runtime/engine.ts";
import { CpuBackend } from "../../../runtime/cpu/backend.ts";
import { Logger } from "../../../runtime/logger.ts";
import { randomArray, rng } from "../../_util.ts";
import { convRelu, inception, N, sameOutputs, viewCount, workingLayers } from "./_inception.ts";

const count = (kinds: string[], kind: string) => kinds.filter((k) => k === kind).length;
const GOOGLENET = new URL(
  "../../../../shared/data/caffe/bvlc_googlenet/deploy.prototxt",
  import.meta.url,
);

Deno.test("elideConcat: an inception block's branches write into the concatenation's output, same outputs at batch 1 and 3", async () => {
  const r = rng(31);
  const net = new Network();
  const x = net.input("x", [N, 8, 6, 6]);
  // A consumer after the concatenation, so that its output is an inner tensor.
  const cat = inception(x, "inc", 8, [4, 3, 5, 2, 4, 3], r);
  net.markOutput(convRelu(cat, "head", 16, 5, 1, r), "y");
  const { optimized, reference } = await sameOutputs(
    net,
    ["fuseHorizontal", "elideConcat"],
    (b) => ({ x: randomArray(b * 8 * 36, r) }),
  );
  const rec = optimized.passes.find((p) => p.name === "elideConcat")!;
  assert.equal(rec.changes.length, 1, rec.changes.join("\n"));
  assert.match(rec.changes[0], /its 4 inputs .* are written in place .* it copies nothing/);
  assert.equal(rec.layersBefore, rec.layersAfter); // the concatenation stays, as a no-op
  assert.ok(count(workingLayers(reference), "Concatenation") === 1);
  assert.ok(!workingLayers(optimized).includes("Concatenation"));
  assert.equal(viewCount(optimized), 6); // 4 concatenation inputs + 2 fused-branch slices
});

Deno.test("elideConcat: pooling and convolution write their slices directly (inception-v3 reduction)", async () => {
  const r = rng(32);
  const net = new Network();
  const x = net.input("x", [N, 4, 9, 9]);
  const pool = x.maxPool({ window: 3, stride: 2 });
  const conv = x.conv({
    outputs: 6,
    kernel: 3,
    stride: 2,
    weights: randomArray(6 * 4 * 9, r),
    bias: randomArray(6, r),
    activation: { type: "relu" },
  });
  const avg = x.avgPool({ window: 3, stride: 2 });
  net.markOutput(pool.concat([conv, avg], { axis: 1 }).sigmoid(), "y");
  const { optimized } = await sameOutputs(
    net,
    ["elideConcat"],
    (b) => ({ x: randomArray(b * 4 * 81, r) }),
    [1, 3, 2],
  );
  assert.equal(viewCount(optimized), 3);
  assert.deepEqual(workingLayers(optimized).sort(), [
    "Activation",
    "Convolution",
    "Pooling",
    "Pooling",
  ]);
});

Deno.test("elideConcat keeps the copy when an input cannot be written in place", async () => {
  const r = rng(33);
  const net = new Network();
  const x = net.input("x", [N, 4, 4, 4]);
  const conv = (name: string) =>
    x.conv({ name, outputs: 4, kernel: 1, weights: randomArray(16, r), bias: randomArray(4, r) });
  const b = conv("b"), d = conv("d");
  net.markOutput(b.concat([conv("a")], { axis: 1 }), "y1");
  net.markOutput(b.concat([conv("c")], { axis: 1 }), "y2"); // b has two readers
  net.markOutput(conv("g").concat([x.sigmoid()], { axis: 1 }), "y3"); // an Activation writes it
  net.markOutput(d, "d"); // d is a network output
  net.markOutput(d.concat([x], { axis: 1 }), "y4");
  net.markOutput(conv("e").concat([conv("f")], { axis: 2 }), "y5"); // not the channel axis
  const { optimized } = await sameOutputs(
    net,
    ["elideConcat"],
    (n) => ({ x: randomArray(n * 64, r) }),
  );
  const changes = optimized.passes.find((p) => p.name === "elideConcat")!.changes;
  assert.equal(changes.filter((c) => c.includes("copies nothing")).length, 0, changes.join("\n"));
  assert.ok(changes.some((c) => /"b" has other readers/.test(c)), changes.join("\n"));
  assert.ok(changes.some((c) => /Activation layer/.test(c)), changes.join("\n"));
  assert.ok(changes.some((c) => /"d" is a network output/.test(c)), changes.join("\n"));
  assert.equal(count(workingLayers(optimized), "Concatenation"), 5);
});

Deno.test("elideConcat lowers the activation memory peak where the concatenation is it", async () => {
  const r = rng(34);
  const net = new Network();
  const x = net.input("x", [N, 4, 16, 16]);
  const branches = [0, 1, 2, 3].map((i) => convRelu(x, `b${i}`, 4, 16, 3, r));
  const cat = branches[0].concat(branches.slice(1), { axis: 1 });
  net.markOutput(convRelu(cat, "head", 64, 2, 1, r), "y");
  const logger = new Logger("error");
  // Without horizontal fusion, which would fuse the four branches into one wide convolution.
  const elided = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 2,
    logger,
    disablePasses: ["fuseHorizontal"],
  });
  const copied = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 2,
    logger,
    disablePasses: ["fuseHorizontal", "elideConcat"],
  });
  // Copying: four 16-channel branches and the 64-channel output are live together (2x);
  // elided: the output alone, plus the input.
  const per = 2 * 64 * 256 * 4;
  assert.ok(copied.memory.activationBytes >= 2 * per, String(copied.memory.activationBytes));
  assert.ok(
    elided.memory.activationBytes < copied.memory.activationBytes,
    `${elided.memory.activationBytes} vs ${copied.memory.activationBytes}`,
  );
  assert.ok(elided.memory.activationBytes <= per + 2 * 4 * 256 * 4 + 4096);
  await sameOutputs(net, ["elideConcat"], (b) => ({ x: randomArray(b * 1024, r) }), [1, 2]);
});

Deno.test("elideConcat and fuseHorizontal under FP16 and INT8: views the Reformat layers cannot honour are dropped, outputs kept", async () => {
  for (const precision of [{ fp16: true }, { int8: true }]) {
    const r = rng(37);
    const net = new Network();
    const x = net.input("x", [N, 8, 6, 6]);
    net.markOutput(inception(x, "inc", 8, [4, 3, 5, 2, 4, 3], r).relu(), "y");
    if (precision.int8) { for (const t of net.tensors.values()) t.setDynamicRange(-4, 4); }
    const { optimized } = await sameOutputs(
      net,
      ["fuseHorizontal", "elideConcat"],
      (b) => ({ x: randomArray(b * 8 * 36, r) }),
      [1, 3],
      precision,
    );
    assert.ok(viewCount(optimized) > 0, JSON.stringify(precision));
  }
});

Deno.test("a plan whose views are wrong is refused at load", async () => {
  const r = rng(35);
  const net = new Network();
  const x = net.input("x", [N, 4, 4, 4]);
  const a = convRelu(x, "a", 4, 4, 1, r), b = convRelu(x, "b", 4, 4, 3, r);
  net.markOutput(convRelu(a.concat([b], { axis: 1 }), "h", 8, 2, 1, r), "y");
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 2,
    logger: new Logger("error"),
    disablePasses: ["fuseHorizontal"],
  });
  const plan = readPlan(engine.serialize());
  const tamper = (edit: (m: typeof plan.manifest) => void) => {
    const m = structuredClone(plan.manifest);
    edit(m);
    return writePlan(m, plan.weights, plan.header.device);
  };
  const views = plan.manifest.tensors.flatMap((t, i) => (t.view ? [i] : []));
  assert.equal(views.length, 2);
  const bad = [
    tamper((m) => (m.tensors[views[1]].view!.channelOffset = 3)), // overlaps, misplaced
    tamper((m) => (m.tensors[views[0]].view!.of = views[1])), // a view of a view
    tamper((m) => (m.memory.offsets[views[0]] += 16)), // offset off its place
    tamper((m) => (m.bindings.push({ name: "v", tensor: views[0], isInput: false }))),
  ];
  for (const bytes of bad) {
    assert.throws(
      () => Engine.load(bytes, new CpuBackend()),
      (e) => e instanceof KilnError && e.code === "PLAN_INVALID",
    );
  }
  Engine.load(tamper(() => {}), new CpuBackend())[Symbol.dispose]();
});

Deno.test("GoogLeNet (random weights): horizontal fusion and concat elision keep its outputs at batch 1 and 2", async () => {
  const { network, blobs } = await parseCaffe({ deploy: GOOGLENET.pathname });
  const r = rng(36);
  // Random weights in place of the missing caffemodel, scaled so activations stay O(1).
  for (const l of network.layers) {
    const w = l.weights.get("weights");
    if (!w) continue;
    const fanIn = w.values.length / (l.attrs.outputs as number);
    l.setWeights(
      "weights",
      randomArray(w.values.length, r, -1, 1).map((v) => v * 1.7 / Math.sqrt(fanIn)),
    );
    const b = l.weights.get("bias");
    if (b) l.setWeights("bias", randomArray(b.values.length, r, -0.1, 0.1));
  }
  network.markOutput(blobs.get("loss3/classifier"), "logits");
  network.markOutput(blobs.get("prob"), "prob");
  const { optimized, reference } = await sameOutputs(
    network,
    ["fuseHorizontal", "elideConcat"],
    (b) => ({ data: randomArray(b * 3 * 224 * 224, r) }),
    [1, 2], // the symbolic batch at 1 and 2: batch 3 would double the test's time on the CPU
  );
  const rec = (name: string) => optimized.passes.find((p) => p.name === name)!;
  // Nine inception blocks: each fuses its three 1x1 branches and elides its concatenation.
  assert.equal(rec("fuseHorizontal").changes.length, 9);
  assert.equal(rec("elideConcat").changes.filter((c) => c.includes("copies nothing")).length, 9);
  const ran = workingLayers(optimized).length, plain = workingLayers(reference).length;
  assert.equal(ran, plain - 2 * 9); // per block: 2 convolutions and the concatenation saved
  assert.ok(optimized.memory.naiveActivationBytes < reference.memory.naiveActivationBytes);
  const table = optimized.passes.map((p) => `${p.name}: ${p.layersBefore} → ${p.layersAfter}`);
  assert.ok(table.includes("fuseHorizontal: 84 → 93"), table.join("\n"));
});
