import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import { KilnError } from "../../../errors.ts";
import { type Dims, N } from "../../../dsl/ir/dims.ts";
import { Network } from "../../../dsl/network.ts";
import { Logger } from "../../../runtime/logger.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

/**
 * softmax(x)_j = e^{x_j} / Σ_i e^{x_i} along `axis` (log: x_j − log Σ_i e^{x_i}), computed in
 * float64 from the definition with an explicit multi-index walk over every other dim.
 */
function referenceSoftmax(dims: number[], axis: number, log: boolean, x: ArrayLike<number>) {
  const a = axis < 0 ? axis + dims.length : axis;
  const y = new Float64Array(x.length);
  const strides = dims.map((_, i) => dims.slice(i + 1).reduce((p, q) => p * q, 1));
  for (let flat = 0; flat < x.length; flat++) {
    // Offset of the first element of this element's slice along the axis.
    const j = Math.floor(flat / strides[a]) % dims[a];
    const start = flat - j * strides[a];
    let sum = 0;
    for (let i = 0; i < dims[a]; i++) sum += Math.exp(x[start + i * strides[a]]);
    y[flat] = log ? x[flat] - Math.log(sum) : Math.exp(x[flat]) / sum;
  }
  return y;
}

const TOL = { rtol: 1e-6, atol: 1e-7 };

async function checkSoftmax(dims: Dims, axis: number | undefined, log: boolean, seed: number) {
  const net = new Network();
  const x = net.input("x", dims);
  const y = x.softmax({ ...(axis === undefined ? {} : { axis }), log });
  assert.deepEqual(y.dims, dims);
  net.markOutput(y, "y");
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 3,
    logger: new Logger("error"),
  });
  using ctx = engine.createContext();
  const r = rng(seed);
  for (const batch of dims[0] === N ? [1, 3] : [1]) {
    const concrete = dims.map((d) => (d === N ? batch : d)) as number[];
    const xd = randomArray(concrete.reduce((p, q) => p * q, 1), r, -5, 5);
    const out = await ctx.execute({ x: xd });
    const want = referenceSoftmax(concrete, axis ?? 1, log, xd);
    assertClose(out.y as Float32Array, want, TOL, `softmax axis ${axis} log ${log} batch ${batch}`);
  }
  engine[Symbol.dispose]();
}

Deno.test("SoftMax over every axis, positive and negative, plain and log, batch 1 and 3", async () => {
  let seed = 1;
  for (const log of [false, true]) {
    for (const axis of [undefined, 1, 2, 3, -1, -2, -3]) {
      await checkSoftmax([N, 3, 4, 5], axis, log, seed++);
    }
    await checkSoftmax([N, 7], -1, log, seed++);
    await checkSoftmax([4, 6], 0, log, seed++); // unbatched: axis 0 is allowed
    await checkSoftmax([4, 6], -1, log, seed++);
  }
});

Deno.test("SoftMax hand-derived values and stability for large inputs", async () => {
  const run = async (x: number[], log = false) => {
    const net = new Network();
    const t = net.input("x", [1, x.length]);
    net.markOutput(t.softmax({ log }), "y");
    return (await runOnCpu(net, { x: Float32Array.from(x) })).y as Float32Array;
  };
  const e = [1, Math.E, Math.E ** 2], s = e[0] + e[1] + e[2];
  assertClose(await run([0, 1, 2]), e.map((v) => v / s), TOL);
  assertClose(await run([0, 1, 2], true), [0, 1, 2].map((v) => v - Math.log(s)), TOL);
  // Shifting every input by 1000 changes nothing (the kernel subtracts the max first).
  assertClose(await run([1000, 1001, 1002]), e.map((v) => v / s), TOL);
  assertClose(await run([-1000, -999, -998], true), [0, 1, 2].map((v) => v - Math.log(s)), TOL);
  assert.deepEqual(Array.from(await run([3, 3, 3, 3])), [0.25, 0.25, 0.25, 0.25]);
});

Deno.test("SoftMax rejects bad axes and attributes naming the layer and the allowed range", () => {
  const net = new Network();
  const x = net.input("x", [N, 3, 4, 5]);
  const check = (args: Record<string, unknown>, code: string, ...patterns: RegExp[]) =>
    assert.throws(() => net.addSoftMax(x, { name: "sm", ...args } as never), (e: unknown) => {
      assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
      assert.equal(e.code, code, e.message);
      assert.equal(e.layer, "sm");
      assert.match(e.message, /SoftMax layer "sm"/);
      for (const p of patterns) assert.match(e.message, p);
      return true;
    });
  check({ axis: 4 }, "SHAPE_MISMATCH", /axis 4 is out of range for rank 4 \(allowed: -4..3\)/);
  check({ axis: -5 }, "SHAPE_MISMATCH", /axis -5 is out of range for rank 4 \(allowed: -4..3\)/);
  check({ axis: 0 }, "SHAPE_MISMATCH", /axis 0 is the batch dimension/);
  check({ axis: -4 }, "SHAPE_MISMATCH", /axis -4 is the batch dimension/);
  check({ axis: 1.5 }, "INVALID_ATTRIBUTE", /attribute "axis"/, /expected int/, /given: 1.5/);
  check({ log: "yes" }, "INVALID_ATTRIBUTE", /attribute "log"/, /expected boolean/, /given: "yes"/);
});
