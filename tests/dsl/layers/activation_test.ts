import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import { KilnError } from "../../../errors.ts";
import { N, Network } from "../../../dsl/network.ts";
import { ACTIVATION_TYPES, type ActivationType } from "../../../dsl/layers/_epilogue.ts";
import { Logger } from "../../../runtime/logger.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

/** TensorRT's alpha/beta defaults per type (NvInfer.h's formulas, ONNX's default attributes). */
const DEFAULTS: Record<ActivationType, [number, number]> = {
  relu: [0, 0],
  sigmoid: [0, 0],
  tanh: [0, 0],
  leaky_relu: [0.01, 0],
  elu: [1, 0],
  selu: [1.6732632423543772, 1.0507009873554805],
  softsign: [0, 0],
  softplus: [1, 1],
  clip: [0, 6],
  hard_sigmoid: [0.2, 0.5],
  scaled_tanh: [1, 1],
  thresholded_relu: [1, 0],
};

/** Direct formulas of NvInfer.h's ActivationType comments, in float64. */
function reference(type: ActivationType, a: number, b: number, x: number): number {
  switch (type) {
    case "relu":
      return Math.max(0, x);
    case "sigmoid":
      return 1 / (1 + Math.exp(-x));
    case "tanh":
      return (1 - Math.exp(-2 * x)) / (1 + Math.exp(-2 * x));
    case "leaky_relu":
      return x >= 0 ? x : a * x;
    case "elu":
      return x >= 0 ? x : a * (Math.exp(x) - 1);
    case "selu":
      return x > 0 ? b * x : b * (a * Math.exp(x) - a);
    case "softsign":
      return x / (1 + Math.abs(x));
    case "softplus":
      return a * Math.log(Math.exp(b * x) + 1);
    case "clip":
      return Math.max(a, Math.min(b, x));
    case "hard_sigmoid":
      return Math.max(0, Math.min(1, a * x + b));
    case "scaled_tanh":
      return a * Math.tanh(b * x);
    case "thresholded_relu":
      return x > a ? x : 0;
  }
}

// The kernel computes in float64 and stores float32: one float32 rounding plus libm differences.
const TOL = { rtol: 2e-6, atol: 1e-7 };

/** Runs one activation at batch 1 and batch 3 on the same engine (dims [N, 3, 4, 5]). */
async function checkActivation(
  type: ActivationType,
  spec: { alpha?: number; beta?: number },
  seed: number,
): Promise<void> {
  const net = new Network();
  const x = net.input("x", [N, 3, 4, 5]);
  net.markOutput(net.addActivation(x, { type, ...spec, name: "act" }).output(0), "y");
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 3,
    logger: new Logger("error"),
  });
  using ctx = engine.createContext();
  const [da, db] = DEFAULTS[type];
  const a = spec.alpha ?? da, b = spec.beta ?? db;
  const r = rng(seed);
  for (const batch of [1, 3]) {
    const data = randomArray(batch * 60, r, -4, 4);
    const { y } = await ctx.execute({ x: data });
    const want = Array.from(data, (v) => reference(type, a, b, v));
    assertClose(y as Float32Array, want, TOL, `${type} batch ${batch}`);
  }
  engine[Symbol.dispose]();
}

for (const type of ACTIVATION_TYPES) {
  Deno.test(`Activation ${type} with TensorRT's default alpha/beta matches the formula at batch 1 and 3`, async () => {
    await checkActivation(type, {}, 11 + ACTIVATION_TYPES.indexOf(type));
  });
}

Deno.test("Activation honours explicit alpha and beta for every parametric type", async () => {
  const params: [ActivationType, number, number][] = [
    ["leaky_relu", 0.3, 0],
    ["elu", 0.7, 0],
    ["selu", 1.2, 0.8],
    ["softplus", 0.5, 2],
    ["clip", -1.5, 0.25],
    ["hard_sigmoid", 0.3, 0.4],
    ["scaled_tanh", 1.7, 0.6],
    ["thresholded_relu", 0.5, 0],
  ];
  for (const [type, alpha, beta] of params) await checkActivation(type, { alpha, beta }, 99);
});

Deno.test("Activation hand-derived values", async () => {
  const cases: [ActivationType, { alpha?: number; beta?: number }, number[], number[]][] = [
    ["relu", {}, [-1, 0.5, 2], [0, 0.5, 2]],
    ["sigmoid", {}, [0, Math.log(3), -Math.log(3)], [0.5, 0.75, 0.25]],
    ["tanh", {}, [0, Math.log(2)], [0, 0.6]],
    ["leaky_relu", {}, [-2, 3], [-0.02, 3]],
    ["elu", { alpha: 2 }, [-Math.log(2), 1], [-1, 1]],
    ["softsign", {}, [1, -3], [0.5, -0.75]],
    ["softplus", {}, [0, Math.log(3)], [Math.log(2), Math.log(4)]],
    ["clip", {}, [-1, 3, 7.5], [0, 3, 6]],
    ["hard_sigmoid", {}, [1, -5, 5], [0.7, 0, 1]],
    ["scaled_tanh", { alpha: 2, beta: 0.5 }, [2 * Math.log(2)], [1.2]],
    // Strictly greater than alpha (1 by default): 1 itself gives 0.
    ["thresholded_relu", {}, [1, 1.5, -3], [0, 1.5, 0]],
  ];
  for (const [type, spec, xs, ys] of cases) {
    const net = new Network();
    const x = net.input("x", [xs.length]);
    net.markOutput(net.addActivation(x, { type, ...spec }).output(0), "y");
    const { y } = await runOnCpu(net, { x: Float32Array.from(xs) });
    assertClose(y as Float32Array, Float32Array.from(ys), { rtol: 1e-6, atol: 1e-7 }, type);
  }
  // selu(-1) = lambda·alpha·(e^-1 - 1) with SELU's constants.
  const net = new Network();
  const x = net.input("x", [1]);
  net.markOutput(x.activation({ type: "selu" }), "y");
  const { y } = await runOnCpu(net, { x: Float32Array.of(-1) });
  assertClose(y as Float32Array, [1.0507009873554805 * 1.6732632423543772 * (Math.exp(-1) - 1)]);
});

Deno.test("Activation softplus stays finite for large inputs (no exp overflow)", async () => {
  const net = new Network();
  const x = net.input("x", [4]);
  net.markOutput(x.softplus(), "y");
  const xs = [1000, 1e30, -1000, 88.5];
  const { y } = await runOnCpu(net, { x: Float32Array.from(xs) });
  // log(1 + e^x) = x + log(1 + e^-x): x itself for large x, e^x for very negative x.
  assertClose(y as Float32Array, [1000, Math.fround(1e30), 0, 88.5], { rtol: 1e-6, atol: 0 });
});

Deno.test("Activation fluent shortcuts create the layers they name", () => {
  const net = new Network();
  const x = net.input("x", [N, 4]);
  const cases: [() => unknown, Record<string, unknown>][] = [
    [() => x.relu(), { type: "relu" }],
    [() => x.sigmoid(), { type: "sigmoid" }],
    [() => x.tanh(), { type: "tanh" }],
    [() => x.leakyRelu(), { type: "leaky_relu", alpha: 0.01 }],
    [() => x.leakyRelu(0.2), { type: "leaky_relu", alpha: 0.2 }],
    [() => x.elu(0.5), { type: "elu", alpha: 0.5 }],
    [() => x.clip(-1, 1), { type: "clip", alpha: -1, beta: 1 }],
    [() => x.softplus(), { type: "softplus" }],
    [() => x.activation({ type: "selu", alpha: 2 }), { type: "selu", alpha: 2 }],
  ];
  for (const [make, attrs] of cases) {
    make();
    const layer = net.layers[net.layers.length - 1];
    assert.equal(layer.kind, "Activation");
    assert.deepEqual(layer.attrs, attrs);
    assert.deepEqual(layer.outputs[0].dims, [N, 4]);
  }
});

Deno.test("Activation rejects bad attributes with a KilnError naming layer, attribute, value and choices", () => {
  const net = new Network();
  const x = net.input("x", [N, 4]);
  const bad: [Record<string, unknown>, string, RegExp][] = [
    [{ type: "gelu" }, "type", /"relu"\|"sigmoid".*"thresholded_relu" \(given: "gelu"\)/],
    [{ type: "relu", alpha: "big" }, "alpha", /expected number.*\(given: "big"\)/],
    [{}, "type", /given: nothing/],
  ];
  for (const [args, attr, detail] of bad) {
    assert.throws(
      () => net.addActivation(x, { ...args, name: "act" } as never),
      (e: unknown) => {
        assert.ok(e instanceof KilnError);
        assert.equal(e.code, "INVALID_ATTRIBUTE");
        assert.equal(e.layer, "act");
        assert.match(e.message, /Activation layer "act"/);
        assert.match(e.message, new RegExp(`attribute "${attr}"`));
        assert.match(e.message, detail);
        return true;
      },
    );
  }
});
