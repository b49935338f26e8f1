import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import { KilnError } from "../../../errors.ts";
import { type Dims, N } from "../../../dsl/ir/dims.ts";
import { Network } from "../../../dsl/network.ts";
import { Logger } from "../../../runtime/logger.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

interface Epilogue {
  activation?: { type: "relu" | "tanh" | "clip"; alpha?: number; beta?: number };
  residual?: "pre" | "post";
}

function act(e: Epilogue, v: number): number {
  switch (e.activation?.type) {
    case undefined:
      return v;
    case "relu":
      return Math.max(0, v);
    case "tanh":
      return Math.tanh(v);
    case "clip":
      return Math.max(e.activation.alpha ?? 0, Math.min(e.activation.beta ?? 6, v));
  }
}

/**
 * y[m, o] = act(b[o] + Σ_v x[m, v]·W[o, v] [+ r if pre]) [+ r if post], where m runs over the
 * dims before `axis` and v over the dims from `axis` on (W is [outputs, V], TensorRT's layout).
 */
function referenceFc(
  dims: number[],
  axis: number,
  outputs: number,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  bias?: ArrayLike<number>,
  e: Epilogue = {},
  r?: ArrayLike<number>,
): Float64Array {
  const m = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const v = dims.slice(axis).reduce((a, b) => a * b, 1);
  const y = new Float64Array(m * outputs);
  for (let i = 0; i < m; i++) {
    for (let o = 0; o < outputs; o++) {
      let acc = bias ? bias[o] : 0;
      for (let j = 0; j < v; j++) acc += x[i * v + j] * w[o * v + j];
      const res = r ? r[i * outputs + o] : 0;
      let out = act(e, e.residual === "pre" ? acc + res : acc);
      if (e.residual === "post") out += res;
      y[i * outputs + o] = out;
    }
  }
  return y;
}

const TOL = { rtol: 1e-5, atol: 3e-5 };

/** One FullyConnected on `dims` (N allowed at dim 0), checked at batch 1 and 3 on one engine. */
async function checkFc(
  dims: Dims,
  outputs: number,
  axis: number | undefined,
  seed: number,
  e: Epilogue = {},
  withBias = true,
) {
  const r = rng(seed);
  const ax = axis ?? 1;
  const v = (dims.slice(ax) as number[]).reduce((a, b) => a * b, 1);
  const w = randomArray(outputs * v, r);
  const bias = withBias ? randomArray(outputs, r) : undefined;
  const net = new Network();
  const x = net.input("x", dims);
  const outDims = [...dims.slice(0, ax), outputs];
  const ins = [x];
  if (e.residual) ins.push(net.input("r", outDims));
  const y = net.addFullyConnected(ins, {
    name: "fc",
    outputs,
    ...(axis === undefined ? {} : { axis }),
    weights: w,
    bias,
    ...e,
  }).output(0);
  assert.deepEqual(y.dims, outDims);
  net.markOutput(y, "y");
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 3,
    disablePasses: "all",
    logger: new Logger("error"),
  });
  using ctx = engine.createContext();
  for (const batch of dims[0] === N ? [1, 3] : [1]) {
    const concrete = dims.map((d) => (d === N ? batch : d)) as number[];
    const xd = randomArray(concrete.reduce((a, b) => a * b, 1), r);
    const rd = e.residual ? randomArray((xd.length / v) * outputs, r) : undefined;
    const out = await ctx.execute(rd ? { x: xd, r: rd } : { x: xd });
    const want = referenceFc(concrete, ax, outputs, xd, w, bias, e, rd);
    assertClose(out.y as Float32Array, want, TOL, `fc ${JSON.stringify(dims)} batch ${batch}`);
  }
  engine[Symbol.dispose]();
}

Deno.test("FullyConnected flattens from axis 1 by default (CHW → vector), batch 1 and 3", async () => {
  await checkFc([N, 3, 4, 5], 7, undefined, 1);
  await checkFc([N, 10], 4, undefined, 2);
  await checkFc([N, 10], 4, undefined, 3, {}, false);
});

Deno.test("FullyConnected over later axes keeps the leading dims", async () => {
  await checkFc([N, 3, 4, 5], 6, 2, 4); // [N, 3, 6]
  await checkFc([N, 3, 4, 5], 2, 3, 5); // [N, 3, 4, 2]
});

Deno.test("FullyConnected on an unbatched input, axis 0 allowed", async () => {
  await checkFc([2, 6], 3, 1, 6);
  await checkFc([2, 6], 3, 0, 7); // [3]
});

Deno.test("FullyConnected large enough to cross the GEMM blocks (V > 128, outputs > 256)", async () => {
  await checkFc([N, 300], 260, undefined, 8);
});

Deno.test("FullyConnected epilogue: activation and residual pre/post", async () => {
  await checkFc([N, 12], 5, undefined, 9, { activation: { type: "relu" } });
  await checkFc([N, 12], 5, undefined, 10, {
    activation: { type: "clip", alpha: -0.5, beta: 0.5 },
  });
  await checkFc([N, 12], 5, undefined, 11, { residual: "pre" });
  await checkFc([N, 12], 5, undefined, 12, { residual: "post", activation: { type: "tanh" } });
  await checkFc([N, 2, 6], 5, 2, 13, { residual: "pre", activation: { type: "relu" } });
});

Deno.test("FullyConnected hand-derived values", async () => {
  const net = new Network();
  const x = net.input("x", [N, 2]);
  net.markOutput(x.fc({ outputs: 3, weights: [1, 0, 0, 1, 1, 1], bias: [0, 1, -3] }), "y");
  const { y } = await runOnCpu(net, { x: Float32Array.of(1, 2, -1, 4) });
  // rows [1, 2] and [-1, 4]: W·x + b = [1, 3, 0] and [-1, 5, 0].
  assert.deepEqual(Array.from(y), [1, 3, 0, -1, 5, 0]);
});

Deno.test("FullyConnected rejects bad attributes and weights naming the layer", () => {
  const net = new Network();
  const x = net.input("x", [N, 3, 4]);
  const w12 = new Float32Array(24);
  const check = (args: Record<string, unknown>, code: string, ...patterns: RegExp[]) =>
    assert.throws(
      () => net.addFullyConnected(x, { name: "fc", ...args } as never),
      (e: unknown) => {
        assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
        assert.equal(e.code, code, e.message);
        assert.equal(e.layer, "fc");
        assert.match(e.message, /FullyConnected layer "fc"/);
        for (const p of patterns) assert.match(e.message, p);
        return true;
      },
    );
  check({ outputs: 0, weights: w12 }, "INVALID_ATTRIBUTE", /attribute "outputs"/, />0/, /given: 0/);
  check(
    { outputs: 2.5, weights: w12 },
    "INVALID_ATTRIBUTE",
    /attribute "outputs"/,
    /expected int/,
    /given: 2.5/,
  );
  check(
    { outputs: 2, axis: -1, weights: w12 },
    "INVALID_ATTRIBUTE",
    /attribute "axis"/,
    />=0/,
    /given: -1/,
  );
  check(
    { outputs: 2, axis: 3, weights: w12 },
    "SHAPE_MISMATCH",
    /axis 3 is out of range for rank 3 \(allowed: 1..2\)/,
  );
  check(
    { outputs: 2, axis: 0, weights: w12 },
    "SHAPE_MISMATCH",
    /axis 0 would flatten the batch dimension/,
  );
  check(
    { outputs: 2, weights: new Float32Array(5) },
    "INVALID_ARGUMENT",
    /weights "weights" have 5 values; expected 24 \(dims \[2,12\]\)/,
  );
  check(
    { outputs: 2, weights: w12, bias: [1] },
    "INVALID_ARGUMENT",
    /weights "bias" have 1 values; expected 2/,
  );
  check({ outputs: 2 }, "INVALID_ARGUMENT", /weights "weights" are missing/);
  check({ outputs: 2, weights: w12, residual: "pre" }, "SHAPE_MISMATCH", /needs a second input/);
});
