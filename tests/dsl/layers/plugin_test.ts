import assert from "node:assert/strict";
import { z } from "zod";
import {
  buildEngine,
  deserializeEngine,
  getPluginCreator,
  KilnError,
  Logger,
  N,
  Network,
  type PluginCreator,
  registerPlugin,
} from "../../../mod.ts";
import { shapeError } from "../../../dsl/layers/_define.ts";
import { plugin as pluginKernel } from "../../../runtime/cpu/plugin.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

// ---- Example plugins, written as a user would ------------------------------------------------

/** y = min(max, max(min, x)); float32 only. */
const ClipByValue: PluginCreator<{ min: number; max: number }> = {
  name: "ClipByValue",
  version: "1",
  summary: "clamps to [min, max]",
  params: z.object({ min: z.number().default(0), max: z.number() }).refine(
    (p) => p.min <= p.max,
    "min must not exceed max",
  ),
  inputs: { min: 1, max: 1 },
  inferShape: (inputs) => [{ dims: inputs[0].dims, dtype: inputs[0].dtype }],
  supportsDType: (dtype) => dtype === "float32",
  cpu: ({ attrs, inputs, outputs }) => {
    const x = inputs[0].data, y = outputs[0].data;
    for (let i = 0; i < x.length; i++) y[i] = Math.min(attrs.max, Math.max(attrs.min, x[i]));
  },
};

/** out = a + alpha[c] * b over [.., C, ...] with a per-channel weight slot "alpha" on axis 1. */
const AddScaled: PluginCreator<Record<never, never>> = {
  name: "AddScaled",
  version: "2",
  params: z.object({}),
  inputs: { min: 2, max: 2 },
  inferShape: ([a, b]) => {
    if (a.dims.length < 2) shapeError("inputs must have a channel axis (rank >= 2)");
    if (a.dims.join() !== b.dims.join()) shapeError("both inputs must have the same dims");
    return [{ dims: a.dims, dtype: "float32" }];
  },
  supportsDType: (dtype) => dtype === "float32",
  weights: ([a]) => ({ alpha: { dims: [a.dims[1] as number] } }),
  cpu: ({ weights, inputs, outputs }) => {
    const a = inputs[0].data, b = inputs[1].data, y = outputs[0].data;
    const alpha = weights.alpha, dims = inputs[0].dims;
    const inner = dims.slice(2).reduce((p, d) => p * d, 1), c = dims[1];
    for (let i = 0; i < a.length; i++) y[i] = a[i] + alpha[Math.floor(i / inner) % c] * b[i];
  },
};

/** Splits the last axis into its first and second halves: two outputs, float32 or int32. */
const SplitHalves: PluginCreator<Record<never, never>> = {
  name: "SplitHalves",
  version: "1",
  params: z.object({}),
  inferShape: (inputs) => {
    const d = inputs[0].dims, last = d[d.length - 1] as number;
    if (last % 2 !== 0) shapeError(`the last axis (${last}) must be even`);
    const half = [...d.slice(0, -1), last / 2];
    return [{ dims: half, dtype: inputs[0].dtype }, { dims: half, dtype: inputs[0].dtype }];
  },
  supportsDType: (dtype, input) => input === 0 && (dtype === "float32" || dtype === "int32"),
  cpu: ({ inputs, outputs }) => {
    const x = inputs[0].data, dims = inputs[0].dims, len = dims[dims.length - 1], h = len / 2;
    const [lo, hi] = [outputs[0].data, outputs[1].data];
    for (let r = 0; r < x.length / len; r++) {
      for (let j = 0; j < h; j++) {
        lo[r * h + j] = x[r * len + j];
        hi[r * h + j] = x[r * len + h + j];
      }
    }
  },
};

registerPlugin(ClipByValue);
registerPlugin(AddScaled);
registerPlugin(SplitHalves);

function expectKilnError(f: () => unknown, layer: string, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.layer, layer);
    assert.match(e.message, new RegExp(`Plugin layer "${layer}"`));
    assert.match(e.message, pattern);
    return true;
  });
}

// ---- Tests -----------------------------------------------------------------------------------

Deno.test("Plugin registry: lookup by name and version, duplicates and bad creators refused", () => {
  assert.equal(getPluginCreator("ClipByValue"), ClipByValue);
  assert.equal(getPluginCreator("ClipByValue", "1"), ClipByValue);
  assert.equal(getPluginCreator("AddScaled", "2"), AddScaled);
  assert.equal(getPluginCreator("AddScaled"), undefined);
  assert.equal(getPluginCreator("Nope"), undefined);
  registerPlugin(ClipByValue); // the same creator again: a no-op
  assert.throws(
    () => registerPlugin({ ...ClipByValue }),
    (e: unknown) => e instanceof KilnError && /already registered/.test(e.message),
  );
  assert.throws(
    () => registerPlugin({ ...ClipByValue, name: "", cpu: undefined as never }),
    (e: unknown) =>
      e instanceof KilnError && /"name" must be a non-empty string/.test(e.message) &&
      /"cpu" must be a function/.test(e.message),
  );
});

Deno.test("Plugin ClipByValue matches min(max, max(min, x)), batch 3 of N", async () => {
  const r = rng(41);
  const data = randomArray(3 * 4 * 5, r, -2, 2);
  const net = new Network();
  const x = net.input("x", [N, 4, 5]);
  const y = net.addPlugin(x, { plugin: "ClipByValue", params: { min: -0.5, max: 0.75 } }).output();
  const z0 = x.plugin("ClipByValue", { max: 1 }); // min defaults to 0
  assert.deepEqual(y.dims, [N, 4, 5]);
  net.markOutput(y, "y");
  net.markOutput(z0, "z");
  const out = await runOnCpu(net, { x: data });
  assertClose(out.y, Array.from(data, (v) => (v < -0.5 ? -0.5 : v > 0.75 ? 0.75 : v)));
  assertClose(out.z, Array.from(data, (v) => (v < 0 ? 0 : v > 1 ? 1 : v)));
  // Hand-derived.
  const hand = new Network();
  const h = hand.input("h", [4]);
  hand.markOutput(h.plugin("ClipByValue", { min: -1, max: 2 }), "y");
  const o = await runOnCpu(hand, { h: new Float32Array([-3, -1, 0.5, 9]) });
  assert.deepEqual([...o.y], [-1, -1, 0.5, 2]);
});

Deno.test("Plugin plan round trip: serialize, deserialize, same results (params and weights)", async () => {
  const r = rng(43);
  const [batch, c, w] = [2, 3, 4];
  const a = randomArray(batch * c * w, r), b = randomArray(batch * c * w, r);
  const alpha = [0.5, -2, 3];
  const net = new Network();
  const ta = net.input("a", [N, c, w]), tb = net.input("b", [N, c, w]);
  const sum = net.addPlugin([ta, tb], { plugin: "AddScaled", version: "2", name: "addscaled" })
    .setWeights("alpha", alpha)
    .output();
  net.markOutput(sum.plugin("ClipByValue", { min: -1, max: 1 }), "y");
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 4,
    logger: new Logger("error"),
  });
  const bytes = engine.serialize();
  using ctx = engine.createContext();
  const first = await ctx.execute({ a, b });
  engine[Symbol.dispose]();

  const loaded = await deserializeEngine(bytes, { device: "cpu", logger: new Logger("error") });
  assert.deepEqual(
    loaded.layers.map((l) => [l.name, l.kind]),
    engine.layers.map((l) => [l.name, l.kind]),
  );
  assert.equal(loaded.layers.filter((l) => l.kind === "Plugin").length, 2);
  using ctx2 = loaded.createContext();
  const second = await ctx2.execute({ a, b });
  loaded[Symbol.dispose]();
  const want = Array.from(a, (v, i) => {
    const s = v + alpha[Math.floor(i / w) % c] * b[i];
    return Math.min(1, Math.max(-1, s));
  });
  assertClose(first.y, want, { rtol: 1e-6 });
  assert.deepEqual([...second.y], [...first.y]);
});

Deno.test("Plugin with two outputs and int32 data", async () => {
  const net = new Network();
  const x = net.input("x", [N, 6], "int32");
  const layer = net.addPlugin(x, { plugin: "SplitHalves" });
  assert.deepEqual(layer.output(0).dims, [N, 3]);
  assert.equal(layer.output(1).dtype, "int32");
  net.markOutput(layer.output(0), "lo");
  net.markOutput(layer.output(1), "hi");
  const out = await runOnCpu(net, { x: new Int32Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) });
  assert.ok(out.lo instanceof Int32Array);
  assert.deepEqual([...out.lo], [1, 2, 3, 7, 8, 9]);
  assert.deepEqual([...out.hi], [4, 5, 6, 10, 11, 12]);
});

Deno.test("Plugin unknown names and versions are errors naming the layer and the registry", () => {
  const net = new Network();
  const x = net.input("x", [N, 4]);
  expectKilnError(
    () => net.addPlugin(x, { plugin: "LeakyShift", name: "p_unknown" }),
    "p_unknown",
    /no plugin "LeakyShift" is registered \(registered plugins: AddScaled@2, ClipByValue@1, SplitHalves@1\)/,
  );
  expectKilnError(
    () => net.addPlugin(x, { plugin: "ClipByValue", version: "7", name: "p_version" }),
    "p_version",
    /plugin "ClipByValue" has version\(s\) "1"; version "7" is not registered/,
  );
  assert.throws(
    () => x.plugin("Nope"),
    (e: unknown) => e instanceof KilnError && e.code === "INVALID_ATTRIBUTE",
  );
});

Deno.test("Plugin bad params, dtypes, input counts and shapes name the layer", () => {
  const net = new Network();
  const x = net.input("x", [N, 4]);
  const i = net.input("i", [N, 4], "int32");
  const odd = net.input("odd", [N, 5]);
  expectKilnError(
    () => net.addPlugin(x, { plugin: "ClipByValue", params: { min: 1 }, name: "p_missing" }),
    "p_missing",
    /param "max"/,
  );
  expectKilnError(
    () => net.addPlugin(x, { plugin: "ClipByValue", params: { min: 2, max: 1 }, name: "p_ref" }),
    "p_ref",
    /min must not exceed max/,
  );
  expectKilnError(
    // @ts-expect-error: params must be JSON
    () => net.addPlugin(x, { plugin: "ClipByValue", params: { max: () => 1 }, name: "p_json" }),
    "p_json",
    /attribute "params.max"/,
  );
  expectKilnError(
    () => net.addPlugin(x, { plugin: "ClipByValue", params: { max: NaN }, name: "p_nan" }),
    "p_nan",
    /attribute "params.max"/,
  );
  expectKilnError(
    () => net.addPlugin(i, { plugin: "ClipByValue", params: { max: 1 }, name: "p_dtype" }),
    "p_dtype",
    /input 0 \[N,4\] is int32, which plugin "ClipByValue" version "1" does not support/,
  );
  expectKilnError(
    () => net.addPlugin([x, x], { plugin: "ClipByValue", params: { max: 1 }, name: "p_count" }),
    "p_count",
    /takes 1 input\(s\), got 2/,
  );
  expectKilnError(
    () => net.addPlugin(odd, { plugin: "SplitHalves", name: "p_odd" }),
    "p_odd",
    /the last axis \(5\) must be even/,
  );
  expectKilnError(
    () => net.addPlugin([x, odd], { plugin: "AddScaled", version: "2", name: "p_dims" }),
    "p_dims",
    /both inputs must have the same dims/,
  );
});

Deno.test("Plugin weights declared by the creator are checked by verify", () => {
  const net = new Network();
  const a = net.input("a", [N, 3, 2]), b = net.input("b", [N, 3, 2]);
  const layer = net.addPlugin([a, b], { plugin: "AddScaled", version: "2", name: "p_w" });
  net.markOutput(layer.output(), "y");
  assert.throws(() => net.verify(), /weights "alpha" are missing \(expected dims \[3\]\)/);
  layer.setWeights("alpha", [1, 2]);
  assert.throws(() => net.verify(), /weights "alpha" have 2 values; expected 3/);
  layer.setWeights("alpha", [1, 2, 3]);
  net.verify();
});

Deno.test("Plugin CPU kernel: an unregistered plugin in a plan is an error naming the layer", () => {
  const args = {
    layer: "from_another_process",
    attrs: { plugin: "NotHere", version: "1", params: {} },
    weights: {},
    inputs: [{ data: new Float32Array(2), dims: [2] }],
    outputs: [{ data: new Float32Array(2), dims: [2] }],
  };
  assert.throws(() => pluginKernel(args), (e: unknown) => {
    assert.ok(e instanceof KilnError);
    assert.equal(e.layer, "from_another_process");
    assert.match(
      e.message,
      /no plugin "NotHere" is registered \(registered plugins: .*ClipByValue@1/,
    );
    return true;
  });
  // A plugin that throws a plain Error is reported with the layer and the plugin's name.
  registerPlugin({
    ...ClipByValue,
    name: "Broken",
    cpu: () => {
      throw new Error("out of cheese");
    },
  });
  assert.throws(
    () =>
      pluginKernel({
        ...args,
        layer: "b",
        attrs: { plugin: "Broken", version: "1", params: { max: 1 } },
      }),
    (e: unknown) =>
      e instanceof KilnError && e.layer === "b" &&
      /plugin "Broken" version "1" failed on the CPU: out of cheese/.test(e.message),
  );
});
