/**
 * ExecutionContext.enqueue on the CPU backend (which runs the network before returning): the
 * outputs land in the caller's arrays and equal execute()'s and an independent formula's, at
 * batch 1 and 3; every bad binding is refused with a KilnError before anything runs.
 */
import assert from "node:assert/strict";
import { buildEngine, Logger, N, Network } from "../../mod.ts";
import { KilnError } from "../../errors.ts";
import { randomArray, rng } from "../_util.ts";

/** y = relu(x · W + b) for x [N,6], W given as FullyConnected weights [4,6]. */
async function engine() {
  const r = rng(7);
  const w = randomArray(24, r), b = randomArray(4, r);
  const net = new Network();
  net.markOutput(
    net.input("x", [N, 6]).fc({ outputs: 4, weights: w, bias: b }).relu(),
    "y",
  );
  const e = await buildEngine(net, { device: "cpu", maxBatchSize: 4, logger: new Logger("error") });
  const reference = (x: Float32Array) => {
    const batch = x.length / 6, y = new Float32Array(batch * 4);
    for (let n = 0; n < batch; n++) {
      for (let o = 0; o < 4; o++) {
        let s = b[o];
        for (let i = 0; i < 6; i++) s += x[n * 6 + i] * w[o * 6 + i];
        y[n * 4 + o] = Math.max(0, s);
      }
    }
    return y;
  };
  return { e, reference };
}

Deno.test("enqueue on the CPU fills the caller's outputs like execute, batch 1 and 3", async () => {
  const { e, reference } = await engine();
  using _e = e;
  using ctx = e.createContext();
  for (const batch of [1, 3]) {
    const x = randomArray(batch * 6, rng(batch));
    const out = new Float32Array(batch * 4).fill(NaN);
    const run = ctx.enqueue({ x }, { y: out });
    run.synchronize();
    await run.done();
    const want = reference(x);
    out.forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= 1e-5 * (1 + Math.abs(want[i]))));
    assert.deepEqual(out, (await ctx.execute({ x })).y);
  }
});

Deno.test("enqueue refuses bad bindings before running", async () => {
  const { e } = await engine();
  using _e = e;
  using ctx = e.createContext();
  const x = (n: number) => new Float32Array(n * 6), y = (n: number) => new Float32Array(n * 4);
  const cases: [string, () => unknown][] = [
    ["unknown input", () => ctx.enqueue({ x: x(1), z: x(1) }, { y: y(1) })],
    ["missing input", () => ctx.enqueue({}, { y: y(1) })],
    ["missing output", () => ctx.enqueue({ x: x(1) }, {})],
    ["wrong dtype", () => ctx.enqueue({ x: new Int32Array(6) }, { y: y(1) })],
    ["output dtype", () => ctx.enqueue({ x: x(1) }, { y: new Int32Array(4) })],
    ["sizes disagree", () => ctx.enqueue({ x: x(2) }, { y: y(1) })],
    ["not a multiple of an item", () => ctx.enqueue({ x: new Float32Array(7) }, { y: y(1) })],
    ["batch over the maximum", () => ctx.enqueue({ x: x(5) }, { y: y(5) })],
    ["batchSize disagrees", () => ctx.enqueue({ x: x(2) }, { y: y(2) }, { batchSize: 3 })],
    [
      "device bindings need batchSize",
      () =>
        ctx.enqueue({ x: { device: Deno.UnsafePointer.create(64n) } }, {
          y: { device: Deno.UnsafePointer.create(64n) },
        }),
    ],
    [
      "a null device address",
      () => ctx.enqueue({ x: { device: null } }, { y: y(1) }, { batchSize: 1 }),
    ],
  ];
  for (const [what, call] of cases) {
    assert.throws(call, (err) => err instanceof KilnError && err.code === "INVALID_ARGUMENT", what);
  }
  // Device addresses pass the engine's checks but the CPU backend cannot read them.
  assert.throws(
    () =>
      ctx.enqueue({ x: { device: Deno.UnsafePointer.create(64n) } }, { y: y(1) }, {
        batchSize: 1,
      }),
    (err) => err instanceof KilnError && /CPU backend takes host arrays/.test(err.message),
  );
});
