/**
 * Precision assignment (builder/precision.ts): forced precisions, strictTypes, missing ranges,
 * reformat layers and their cost, FP16 rounding against Math.f16round, and plans that keep
 * their precisions and scales through serialization.
 */
import assert from "node:assert/strict";
import { buildEngine } from "../../builder/build.ts";
import { N, Network } from "../../dsl/network.ts";
import { KilnError } from "../../errors.ts";
import { deserializeEngine } from "../../runtime/engine.ts";
import { Logger, MemoryLogger } from "../../runtime/logger.ts";
import { ArrayBatchStream } from "../../builder/quant/batch_stream.ts";
import { MinMaxCalibrator } from "../../builder/quant/calibrator.ts";
import { readPlan } from "../../plan/mod.ts";
import { randomArray, rng } from "../_util.ts";

const quiet = () => new Logger("error");
const h = Math.f16round;

/** x [N, 8] → fc 6 → relu → fc 4 → softmax; ranges on every tensor when `ranges`. */
function mlp(ranges = true) {
  const r = rng(3);
  const net = new Network();
  const x = net.input("x", [N, 8]);
  const fc1 = net.addFullyConnected(x, { outputs: 6, weights: randomArray(48, r), name: "fc1" });
  const relu = net.addActivation(fc1.output(0), { type: "relu", name: "relu1" });
  const fc2 = net.addFullyConnected(relu.output(0), {
    outputs: 4,
    weights: randomArray(24, r),
    bias: randomArray(4, r),
    name: "fc2",
  });
  const sm = net.addSoftMax(fc2.output(0), { name: "prob" });
  net.markOutput(sm.output(0), "prob");
  if (ranges) {
    x.setDynamicRange(-1, 1);
    relu.output(0).setDynamicRange(0, 3);
    fc2.output(0).setDynamicRange(-5, 5);
  }
  return { net, fc1, relu, fc2, sm };
}

async function run(engine: Awaited<ReturnType<typeof buildEngine>>, x: Float32Array) {
  using ctx = engine.createContext();
  return (await ctx.execute({ x })).prob as Float32Array;
}

Deno.test("buildEngine without reduced precision writes the plan as before: FP32, no reformats, no precision section", async () => {
  const { net } = mlp();
  const e = await buildEngine(net, { device: "cpu", logger: quiet() });
  const d = e.describe();
  assert.ok(d.layers.every((l) => l.precision === "fp32" && l.kind !== "Reformat"));
  assert.ok(d.tensors.every((t) => t.precision === undefined && t.scale === undefined));
  e[Symbol.dispose]();
});

Deno.test("int8 build: INT8 where there is a kernel and ranges, reformats shown, the log gives each layer's reason", async () => {
  const { net } = mlp();
  const logger = new MemoryLogger("info");
  const e = await buildEngine(net, { device: "cpu", int8: true, maxBatchSize: 2, logger });
  const layers = e.describe().layers;
  const byName = Object.fromEntries(layers.map((l) => [l.name, l.precision]));
  assert.equal(byName["fc1 + relu1"], "int8");
  assert.equal(byName["fc2"], "int8");
  assert.equal(byName["prob"], "fp32");
  // x is quantized once; fc1's INT8 epilogue requantizes for fc2; fc2 writes FP32 for softmax.
  assert.deepEqual(layers.map((l) => l.kind), [
    "Reformat",
    "FullyConnected",
    "FullyConnected",
    "SoftMax",
  ]);
  const lines = logger.messages.map((m) => m.message);
  assert.ok(
    lines.some((m) => /^precision: fc2: INT8 — cheapest \(FP32 .*INT8 /.test(m)),
    lines.join("\n"),
  );
  assert.ok(lines.some((m) => /^precision: prob: FP32 — .*no INT8 kernel for SoftMax/.test(m)));
  // The profiler reports the reformat like any layer.
  using ctx = e.createContext();
  ctx.profiler.enabled = true;
  await ctx.execute({ x: randomArray(16, rng(4)) });
  assert.deepEqual(ctx.profiler.report().map((t) => t.kind), layers.map((l) => l.kind));
  e[Symbol.dispose]();
});

Deno.test("forced precision without a kernel falls back with a warning; strictTypes makes it an error naming the layer", async () => {
  const { net, sm } = mlp();
  sm.precision = "int8";
  const logger = new MemoryLogger("warning");
  const e = await buildEngine(net, { device: "cpu", logger });
  assert.equal(e.describe().layers.find((l) => l.name === "prob")!.precision, "fp32");
  assert.ok(
    logger.messages.some((m) =>
      m.severity === "warning" && /layer "prob": forced INT8 is not possible/.test(m.message)
    ),
  );
  e[Symbol.dispose]();
  await assert.rejects(
    buildEngine(net, { device: "cpu", strictTypes: true, logger: quiet() }),
    (err: unknown) =>
      err instanceof KilnError && err.code === "UNSUPPORTED" && err.layer === "prob" &&
      /forced to INT8 under strictTypes.*no INT8 kernel for SoftMax/.test(err.message),
  );
});

Deno.test("missing dynamic ranges: an error naming the tensor under strictTypes or with none at all, else a logged fallback", async () => {
  // Forced INT8 + strictTypes, fc2's input "relu1" output has no range.
  const a = mlp();
  a.relu.output(0).dynamicRange = undefined;
  a.fc2.precision = "int8";
  await assert.rejects(
    buildEngine(a.net, { device: "cpu", strictTypes: true, logger: quiet() }),
    (err: unknown) =>
      err instanceof KilnError && err.layer === "fc2" && err.tensor === a.relu.output(0).name &&
      /has no dynamic range/.test(err.message),
  );
  // int8 with no calibrator and no range anywhere.
  const b = mlp(false);
  await assert.rejects(
    buildEngine(b.net, { device: "cpu", int8: true, logger: quiet() }),
    (err: unknown) =>
      err instanceof KilnError && err.tensor === "x" &&
      /INT8 is enabled but tensor "x".*no dynamic range/.test(err.message),
  );
  // Some ranges: the layer without one runs in FP32 and the log says which tensor lacked it.
  const c = mlp();
  c.relu.output(0).dynamicRange = undefined;
  const logger = new MemoryLogger("warning");
  const e = await buildEngine(c.net, { device: "cpu", int8: true, logger });
  const p = Object.fromEntries(e.describe().layers.map((l) => [l.name, l.precision]));
  assert.equal(p["fc1 + relu1"], "int8");
  assert.equal(p["fc2"], "fp32");
  assert.ok(
    logger.messages.some((m) =>
      m.message.includes(
        `no dynamic range for tensor "${c.relu.output(0).name}": layer "fc2" runs in FP32`,
      )
    ),
  );
  e[Symbol.dispose]();
});

Deno.test("FP16 layers: inputs, weights and outputs rounded to half (vs Math.f16round), network output stays float32", async () => {
  const r = rng(5);
  const w = randomArray(5 * 7, r), b = randomArray(5, r);
  const net = new Network();
  const x = net.input("x", [N, 7]);
  const fc = net.addFullyConnected(x, { outputs: 5, weights: w, bias: b });
  fc.precision = "fp16";
  net.markOutput(fc.output(0), "y");
  const e = await buildEngine(net, { device: "cpu", maxBatchSize: 3, logger: quiet() });
  assert.equal(e.binding("y")!.dtype, "float32");
  assert.deepEqual(e.describe().layers.map((l) => `${l.kind}:${l.precision}`), [
    "Reformat:fp16",
    "FullyConnected:fp16",
    "Reformat:fp32",
  ]);
  using ctx = e.createContext();
  for (const batch of [1, 3]) {
    const xv = randomArray(batch * 7, rng(50 + batch), -4, 4);
    const y = (await ctx.execute({ x: xv })).y as Float32Array;
    let differsFromFp32 = false;
    for (let n = 0; n < batch; n++) {
      for (let o = 0; o < 5; o++) {
        let acc = h(b[o]), fp32 = b[o];
        for (let j = 0; j < 7; j++) {
          acc += h(xv[n * 7 + j]) * h(w[o * 7 + j]);
          fp32 += xv[n * 7 + j] * w[o * 7 + j];
        }
        const got = y[n * 5 + o], want = h(acc);
        assert.equal(h(got), got, `y[${n},${o}] = ${got} is not a half value`);
        // FP32 arithmetic inside the kernel: at most one half step from the exact sum's half.
        const ulp = 2 ** (Math.floor(Math.log2(Math.abs(want))) - 10);
        assert.ok(Math.abs(got - want) <= ulp, `y[${n},${o}] = ${got}, reference ${want}`);
        if (Math.abs(got - fp32) > 1e-6 * Math.abs(fp32)) differsFromFp32 = true;
      }
    }
    assert.ok(differsFromFp32, "FP16 gave FP32's values");
  }
  e[Symbol.dispose]();
});

Deno.test("setOutputType(0, float16) on an output hands it over as float16 bits", async () => {
  const net = new Network();
  const x = net.input("x", [N, 6]);
  const relu = net.addActivation(x, { type: "relu" });
  relu.setOutputType(0, "float16");
  net.markOutput(relu.output(0), "y");
  const e = await buildEngine(net, { device: "cpu", maxBatchSize: 2, logger: quiet() });
  assert.equal(e.binding("y")!.dtype, "float16");
  using ctx = e.createContext();
  const xv = randomArray(12, rng(8), -3, 3);
  const y = (await ctx.execute({ x: xv })).y;
  assert.ok(y instanceof Uint16Array);
  const half = new Float16Array(y.buffer, y.byteOffset, y.length);
  half.forEach((v, i) => assert.equal(v, h(Math.max(0, xv[i]))));
  e[Symbol.dispose]();
});

Deno.test("reformat cost: a lone FP16-capable layer between forced FP32 layers stays FP32; a chain goes FP16", async () => {
  const build = async (chain: number) => {
    const net = new Network();
    const x = net.input("x", [N, 64]);
    const first = net.addFullyConnected(x, { outputs: 64, weights: randomArray(4096, rng(1)) });
    first.precision = "fp32";
    let t = first.output(0);
    for (let i = 0; i < chain; i++) {
      t = net.addActivation(t, { type: "tanh", name: `act${i}` }).output(0);
    }
    const last = net.addSoftMax(t, {});
    last.precision = "fp32";
    net.markOutput(last.output(0), "y");
    const e = await buildEngine(net, {
      device: "cpu",
      fp16: true,
      disablePasses: "all",
      logger: quiet(),
    });
    const p = e.describe().layers.filter((l) => l.name.startsWith("act")).map((l) => l.precision);
    e[Symbol.dispose]();
    return p;
  };
  assert.deepEqual(await build(1), ["fp32"]);
  assert.deepEqual(await build(4), ["fp16", "fp16", "fp16", "fp16"]);
});

Deno.test("a saved INT8/FP16 plan keeps precisions, scales and outputs", async () => {
  const { net, sm } = mlp();
  sm.precision = "fp16";
  const e = await buildEngine(net, {
    device: "cpu",
    int8: true,
    fp16: true,
    maxBatchSize: 3,
    logger: quiet(),
  });
  const x = randomArray(24, rng(9));
  const before = await run(e, x);
  const plan = e.serialize();
  const again = await deserializeEngine(plan, { device: "cpu" });
  assert.deepEqual(again.describe(), e.describe());
  const d = again.describe();
  assert.ok(
    d.layers.some((l) => l.precision === "int8") && d.layers.some((l) => l.precision === "fp16"),
  );
  const xq = d.tensors.find((t) => t.name === "x/int8")!;
  assert.equal(xq.precision, "int8");
  assert.equal(xq.scale, Math.fround(1 / 127));
  assert.deepEqual(await run(again, x), before);
  e[Symbol.dispose]();
  again[Symbol.dispose]();
});

Deno.test("a calibrator gives the INT8 scales (amax / 127 of what it saw); user ranges take precedence", async () => {
  const { net, relu } = mlp(false);
  relu.output(0).setDynamicRange(-2, 2);
  const x = randomArray(4 * 8, rng(30), -0.5, 0.5);
  const calibrator = new MinMaxCalibrator(new ArrayBatchStream({ x }, { batchSize: 2, count: 4 }));
  const e = await buildEngine(net, { device: "cpu", int8: true, calibrator, logger: quiet() });
  const tensors = new Map(e.describe().tensors.map((t) => [t.name, t]));
  let amax = 0;
  for (const v of x) amax = Math.max(amax, Math.abs(v));
  assert.equal(tensors.get("x/int8")!.scale, Math.fround(amax / 127));
  assert.equal(tensors.get(relu.output(0).name)!.scale, Math.fround(2 / 127));
  const { manifest } = readPlan(e.serialize());
  assert.equal(manifest.build.precision?.scalesFrom, "calibrator (minmax) and dynamic ranges");
  assert.ok(manifest.build.precision!.layers.some((l) => l.precision === "int8"));
  e[Symbol.dispose]();
});

Deno.test("an FP16 output that FP16 layers also read: they read the half tensor before its FP32 reformat", async () => {
  const net = new Network();
  const x = net.input("x", [N, 5]);
  const t = net.addActivation(x, { type: "tanh", name: "t" });
  const r = net.addActivation(t.output(0), { type: "sigmoid", name: "s" });
  t.precision = "fp16";
  r.precision = "fp16";
  net.markOutput(t.output(0), "y");
  net.markOutput(r.output(0), "z");
  const e = await buildEngine(net, { device: "cpu", disablePasses: "all", logger: quiet() });
  const d = e.describe();
  const name = (i: number) => d.tensors[i].name;
  assert.deepEqual(
    d.layers.map((l) => `${l.name}: ${l.inputs.map(name)} -> ${l.outputs.map(name)}`).sort(),
    [
      "reformat x to FP16: x -> x/fp16",
      "reformat y/fp16 to FP32: y/fp16 -> y",
      "reformat z/fp16 to FP32: z/fp16 -> z",
      "s: y/fp16 -> z/fp16",
      "t: x/fp16 -> y/fp16",
    ],
  );
  using ctx = e.createContext();
  const xv = randomArray(5, rng(31), -3, 3);
  const out = await ctx.execute({ x: xv });
  xv.forEach((v, i) => {
    const y = h(Math.tanh(h(v)));
    assert.equal(out.y[i], y);
    assert.ok(Math.abs(out.z[i] - h(1 / (1 + Math.exp(-y)))) <= 2 ** -11);
  });
  e[Symbol.dispose]();
});
