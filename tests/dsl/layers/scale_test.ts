import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import { KilnError } from "../../../errors.ts";
import { type Dims, N } from "../../../dsl/ir/dims.ts";
import { Network } from "../../../dsl/network.ts";
import { Logger } from "../../../runtime/logger.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

type Mode = "uniform" | "channel" | "elementwise";

interface Coefficients {
  scale?: Float32Array;
  shift?: Float32Array;
  power?: Float32Array;
}

/**
 * y = (x·scale[k] + shift[k])^power[k] where k is 0 (uniform), the index along channelAxis
 * (channel) or the element's position inside one batch item (elementwise; the whole tensor when
 * unbatched). Missing coefficients are 1, 0 and 1.
 */
function referenceScale(
  dims: number[],
  batched: boolean,
  mode: Mode,
  channelAxis: number,
  x: ArrayLike<number>,
  c: Coefficients,
): Float64Array {
  const y = new Float64Array(x.length);
  const item = batched ? dims.slice(1).reduce((a, b) => a * b, 1) : x.length;
  for (let i = 0; i < x.length; i++) {
    let k = 0;
    if (mode === "elementwise") k = i % item;
    if (mode === "channel") {
      let rem = i;
      for (let d = dims.length - 1; d >= 0; d--) {
        if (d === channelAxis) k = rem % dims[d];
        rem = Math.floor(rem / dims[d]);
      }
    }
    const v = x[i] * (c.scale ? c.scale[k] : 1) + (c.shift ? c.shift[k] : 0);
    y[i] = c.power ? Math.pow(v, c.power[k]) : v;
  }
  return y;
}

const TOL = { rtol: 2e-6, atol: 1e-6 };

async function checkScale(
  dims: Dims,
  mode: Mode,
  channelAxis: number,
  which: (keyof Coefficients)[],
  seed: number,
) {
  const r = rng(seed);
  const item = (dims as number[]).slice(dims[0] === N ? 1 : 0);
  const count = mode === "uniform"
    ? 1
    : mode === "channel"
    ? (dims[channelAxis] as number)
    : item.reduce((a, b) => a * b, 1);
  // Positive bases keep fractional powers real: x in [0.5, 2], scale in [0.5, 1.5], shift ≥ 0.
  const c: Coefficients = {};
  if (which.includes("scale")) c.scale = randomArray(count, r, 0.5, 1.5);
  if (which.includes("shift")) c.shift = randomArray(count, r, 0.01, 0.5);
  if (which.includes("power")) c.power = randomArray(count, r, -2, 2);
  const net = new Network();
  const x = net.input("x", dims);
  const y = net.addScale(x, { name: "s", mode, channelAxis, ...c }).output(0);
  net.markOutput(y, "y");
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 3,
    logger: new Logger("error"),
  });
  using ctx = engine.createContext();
  for (const batch of dims[0] === N ? [1, 3] : [1]) {
    const concrete = dims.map((d) => (d === N ? batch : d)) as number[];
    const xd = randomArray(concrete.reduce((a, b) => a * b, 1), r, 0.5, 2);
    const out = await ctx.execute({ x: xd });
    const want = referenceScale(concrete, dims[0] === N, mode, channelAxis, xd, c);
    assertClose(out.y as Float32Array, want, TOL, `${mode} ${which} ${dims} batch ${batch}`);
  }
  engine[Symbol.dispose]();
}

const COMBOS: (keyof Coefficients)[][] = [
  ["scale"],
  ["shift"],
  ["power"],
  ["scale", "shift"],
  ["scale", "shift", "power"],
];

Deno.test("Scale uniform with every combination of scale, shift and power", async () => {
  let seed = 1;
  for (const which of COMBOS) await checkScale([N, 3, 4, 5], "uniform", 1, which, seed++);
});

Deno.test("Scale per channel on axis 1, on a later axis, and on an unbatched tensor", async () => {
  let seed = 20;
  for (const which of COMBOS) {
    await checkScale([N, 3, 4, 5], "channel", 1, which, seed++);
    await checkScale([N, 3, 4, 5], "channel", 3, which, seed++);
    await checkScale([N, 6], "channel", 1, which, seed++);
    await checkScale([3, 4], "channel", 0, which, seed++);
  }
});

Deno.test("Scale elementwise over one item, batched and unbatched", async () => {
  let seed = 40;
  for (const which of COMBOS) {
    await checkScale([N, 3, 4], "elementwise", 1, which, seed++);
    // Unbatched: one coefficient per element of the whole tensor (not per row).
    await checkScale([3, 4], "elementwise", 1, which, seed++);
  }
});

Deno.test("Scale hand-derived values", async () => {
  const run = async (args: Record<string, unknown>, x: number[], dims: Dims) => {
    const net = new Network();
    const t = net.input("x", dims);
    net.markOutput(t.scale(args as never), "y");
    return Array.from((await runOnCpu(net, { x: Float32Array.from(x) })).y);
  };
  // (2·3 + 1)^2 = 49; no coefficients at all is the identity.
  assert.deepEqual(await run({ scale: [2], shift: [1], power: [2] }, [3], [1]), [49]);
  assert.deepEqual(await run({}, [3, -4], [2]), [3, -4]);
  // Per channel on [1, 2, 2]: channel 0 ×10, channel 1 ×-1 then +5.
  assert.deepEqual(
    await run({ mode: "channel", scale: [10, -1], shift: [0, 5] }, [1, 2, 3, 4], [1, 2, 2]),
    [10, 20, 2, 1],
  );
  // A negative base with an integer power is real; with a fractional one it is NaN (as pow).
  const p = await run({ power: [2] }, [-3], [1]);
  assert.deepEqual(p, [9]);
  assert.ok(Number.isNaN((await run({ power: [0.5] }, [-4], [1]))[0]));
});

Deno.test("Scale rejects bad attributes and weights naming the layer", () => {
  const net = new Network();
  const x = net.input("x", [N, 3, 4]);
  const check = (args: Record<string, unknown>, code: string, ...patterns: RegExp[]) =>
    assert.throws(() => net.addScale(x, { name: "s", ...args } as never), (e: unknown) => {
      assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
      assert.equal(e.code, code, e.message);
      assert.equal(e.layer, "s");
      assert.match(e.message, /Scale layer "s"/);
      for (const p of patterns) assert.match(e.message, p);
      return true;
    });
  check(
    { mode: "row" },
    "INVALID_ATTRIBUTE",
    /attribute "mode"/,
    /"uniform"\|"channel"\|"elementwise"/,
    /given: "row"/,
  );
  check(
    { mode: "channel", channelAxis: 5 },
    "SHAPE_MISMATCH",
    /channelAxis 5 is out of range for rank 3 \(allowed: 1..2\)/,
  );
  check(
    { mode: "channel", channelAxis: -1 },
    "INVALID_ATTRIBUTE",
    /attribute "channelAxis"/,
    /given: -1/,
  );
  check(
    { mode: "channel", channelAxis: 0 },
    "SHAPE_MISMATCH",
    /the channel dimension cannot be the symbolic batch/,
  );
  check(
    { mode: "channel", scale: [1, 2] },
    "INVALID_ARGUMENT",
    /weights "scale" have 2 values; expected 3/,
  );
  check(
    { mode: "uniform", shift: [1, 2] },
    "INVALID_ARGUMENT",
    /weights "shift" have 2 values; expected 1/,
  );
  check(
    { mode: "elementwise", power: new Float32Array(3) },
    "INVALID_ARGUMENT",
    /weights "power" have 3 values; expected 12/,
  );
});
