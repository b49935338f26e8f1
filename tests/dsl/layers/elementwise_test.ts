import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import { KilnError } from "../../../errors.ts";
import { type Dims, N } from "../../../dsl/ir/dims.ts";
import { Network } from "../../../dsl/network.ts";
import { ELEMENTWISE_OPS } from "../../../dsl/layers/elementwise.ts";
import { Logger } from "../../../runtime/logger.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

type Op = typeof ELEMENTWISE_OPS[number];

const F: Record<Op, (a: number, b: number) => number> = {
  sum: (a, b) => a + b,
  prod: (a, b) => a * b,
  max: (a, b) => Math.max(a, b),
  min: (a, b) => Math.min(a, b),
  sub: (a, b) => a - b,
  div: (a, b) => a / b,
  pow: (a, b) => a ** b,
};

/**
 * numpy broadcasting written out: align shapes at the trailing dims; an input dim of 1 reads
 * index 0. Inputs fold left to right in float64, rounding to float32 after each step as the
 * layer's intermediate tensors do.
 */
function referenceElementwise(
  op: Op,
  shapes: number[][],
  data: ArrayLike<number>[],
): { dims: number[]; y: Float64Array } {
  const rank = Math.max(...shapes.map((s) => s.length));
  const dims = Array.from(
    { length: rank },
    (_, i) => Math.max(...shapes.map((s) => s[s.length - rank + i] ?? 1)),
  );
  const total = dims.reduce((a, b) => a * b, 1);
  const y = new Float64Array(total);
  const idx = new Array<number>(rank);
  for (let o = 0; o < total; o++) {
    let rem = o;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d] = rem % dims[d];
      rem = Math.floor(rem / dims[d]);
    }
    const read = (k: number) => {
      const s = shapes[k];
      let off = 0;
      for (let d = 0; d < s.length; d++) {
        const i = s[d] === 1 ? 0 : idx[rank - s.length + d];
        off = off * s[d] + i;
      }
      return data[k][off];
    };
    let acc = read(0);
    for (let k = 1; k < shapes.length; k++) acc = Math.fround(F[op](acc, read(k)));
    y[o] = acc;
  }
  return { dims, y };
}

const TOL = { rtol: 1e-6, atol: 1e-7 };

/** Inputs per op: positive bases for pow, divisors away from zero for div. */
function operand(op: Op, k: number, n: number, r: () => number): Float32Array {
  if (op === "pow") return k === 0 ? randomArray(n, r, 0.5, 2) : randomArray(n, r, -2, 2);
  if (op === "div" && k > 0) return randomArray(n, r, 0.5, 2);
  return randomArray(n, r, -2, 2);
}

/**
 * Runs ElementWise(op) over inputs of the given dims (N allowed at dim 0) at batch 1 and 3 on
 * the same engine, against the reference.
 */
async function checkElementwise(op: Op, shapes: Dims[], seed: number) {
  const net = new Network();
  const ins = shapes.map((d, i) => net.input(`x${i}`, d));
  const y = net.addElementWise(ins, { op, name: "ew" }).output(0);
  net.markOutput(y, "y");
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 3,
    logger: new Logger("error"),
  });
  using ctx = engine.createContext();
  const r = rng(seed);
  for (const batch of [1, 3]) {
    const concrete = shapes.map((s) => s.map((d) => (d === N ? batch : d)) as number[]);
    const data = concrete.map((s, k) => operand(op, k, s.reduce((a, b) => a * b, 1), r));
    const inputs = Object.fromEntries(data.map((d, i) => [`x${i}`, d]));
    const out = await ctx.execute(inputs, { batchSize: batch });
    const want = referenceElementwise(op, concrete, data);
    assert.deepEqual(
      y.dims.map((d) => (d === N ? batch : d)),
      want.dims,
      `${op} ${JSON.stringify(shapes)} dims`,
    );
    assertClose(
      out.y as Float32Array,
      want.y,
      TOL,
      `${op} ${JSON.stringify(shapes)} batch ${batch}`,
    );
  }
  engine[Symbol.dispose]();
}

const SHAPES: Dims[][] = [
  [[N, 3, 4, 5], [N, 3, 4, 5]], // same shape
  [[N, 3, 4, 5], [1, 3, 1, 1]], // per channel
  [[N, 3, 4, 5], [5]], // trailing dim, lower rank
  [[4, 1], [N, 3, 1, 5]], // both sides broadcast
  [[N, 1, 4, 1], [3, 1, 5]], // batched on the left, unbatched higher rank on the right
  [[1], [N, 2, 3]], // scalar-like
];

for (const op of ELEMENTWISE_OPS) {
  Deno.test(`ElementWise ${op} with numpy broadcasting at batch 1 and 3`, async () => {
    let seed = 100 * ELEMENTWISE_OPS.indexOf(op);
    for (const shapes of SHAPES) await checkElementwise(op, shapes, seed++);
  });
}

Deno.test("ElementWise with three inputs folds left to right, with broadcasting", async () => {
  let seed = 1000;
  for (const op of ELEMENTWISE_OPS) {
    await checkElementwise(op, [[N, 2, 3], [3], [N, 2, 1]], seed++);
    await checkElementwise(op, [[2, 1], [N, 1, 3], [N, 2, 3], [1]], seed++);
  }
});

Deno.test("ElementWise hand-derived values: operand order and three inputs", async () => {
  const run = async (op: Op, xs: number[][]) => {
    const net = new Network();
    const ins = xs.map((v, i) => net.input(`x${i}`, [v.length]));
    net.markOutput(net.addElementWise(ins, { op }).output(0), "y");
    const inputs = Object.fromEntries(xs.map((v, i) => [`x${i}`, Float32Array.from(v)]));
    return Array.from((await runOnCpu(net, inputs)).y);
  };
  assert.deepEqual(await run("sub", [[5, 1], [2, 4]]), [3, -3]);
  assert.deepEqual(await run("div", [[6, 1], [3, 4]]), [2, 0.25]);
  assert.deepEqual(await run("pow", [[2, 9], [3, 0.5]]), [8, 3]);
  assert.deepEqual(await run("sub", [[10, 10], [1, 2], [3, 4]]), [6, 4]); // (a - b) - c
  assert.deepEqual(await run("div", [[24, 8], [2, 2], [3, 4]]), [4, 1]);
  assert.deepEqual(await run("max", [[1, -5], [-2, -7], [0, -6]]), [1, -5]);
  assert.deepEqual(await run("min", [[1, -5], [-2, -7], [0, -6]]), [-2, -7]);
  assert.deepEqual(await run("sum", [[1, 2], [3, 4], [5, 6]]), [9, 12]);
  assert.deepEqual(await run("prod", [[1, 2], [3, 4], [5, 6]]), [15, 48]);
  // NaN propagates through max/min from either side.
  const m = await run("max", [[NaN, 1], [1, NaN]]);
  assert.ok(Number.isNaN(m[0]) && Number.isNaN(m[1]));
});

Deno.test("ElementWise fluent shortcuts map to their ops", () => {
  const net = new Network();
  const a = net.input("a", [N, 4]);
  const b = net.input("b", [4]);
  const cases: [string, Op][] = [
    ["add", "sum"],
    ["sub", "sub"],
    ["mul", "prod"],
    ["div", "div"],
    ["max", "max"],
    ["min", "min"],
    ["pow", "pow"],
  ];
  for (const [method, op] of cases) {
    const y = (a as unknown as Record<string, (t: unknown) => typeof a>)[method](b);
    assert.equal(y.producer!.kind, "ElementWise");
    assert.equal(y.producer!.attrs.op, op);
    assert.deepEqual(y.producer!.inputs, [a, b]);
    assert.deepEqual(y.dims, [N, 4]);
  }
});

Deno.test("ElementWise rejects bad attributes, shapes and dtypes naming the layer", () => {
  const net = new Network();
  const a = net.input("a", [N, 3]);
  const check = (f: () => unknown, code: string, ...patterns: RegExp[]) =>
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
      assert.equal(e.code, code, e.message);
      assert.equal(e.layer, "ew");
      assert.match(e.message, /ElementWise layer "ew"/);
      for (const p of patterns) assert.match(e.message, p);
      return true;
    });
  check(
    () => net.addElementWise([a, a], { op: "mod", name: "ew" } as never),
    "INVALID_ATTRIBUTE",
    /attribute "op"/,
    /"sum"\|"prod"\|"max"\|"min"\|"sub"\|"div"\|"pow"/,
    /given: "mod"/,
  );
  check(
    () => net.addElementWise([a, net.input("b", [4])], { op: "sum", name: "ew" }),
    "SHAPE_MISMATCH",
    /inputs \[N,3\] and \[4\] do not broadcast/,
  );
  check(
    () => net.addElementWise([a, net.input("c", [2, 3])], { op: "sum", name: "ew" }),
    "SHAPE_MISMATCH",
    /do not broadcast/,
  );
  check(
    () => net.addElementWise([a], { op: "sum", name: "ew" }),
    "INVALID_ARGUMENT",
    /takes at least 2 input\(s\), got 1/,
  );
  check(
    () => net.addElementWise([a, net.input("i", [N, 3], "int32")], { op: "sum", name: "ew" }),
    "SHAPE_MISMATCH",
    /input 1 \("i"\) is int32; expected float32/,
  );
});
