import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import { type Dims, N } from "../../../dsl/ir/dims.ts";
import type { DType } from "../../../dsl/ir/dtype.ts";
import { Network } from "../../../dsl/network.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

type Op = "sum" | "prod" | "max" | "min" | "avg";

/**
 * Reference: decode every input element's coordinates, drop the reduced ones to find its output
 * element, and fold it in there (in double precision).
 */
function referenceReduce(
  x: ArrayLike<number>,
  dims: number[],
  axes: number[],
  op: Op,
): number[] {
  const rank = dims.length;
  const reduced = axes.map((a) => (a < 0 ? a + rank : a));
  const keptDims = dims.filter((_, i) => !reduced.includes(i));
  const outCount = keptDims.reduce((a, b) => a * b, 1);
  const acc: number[] = [], count: number[] = new Array(outCount).fill(0);
  for (let flat = 0; flat < x.length; flat++) {
    const coord: number[] = [];
    for (let d = rank - 1, rest = flat; d >= 0; d--) {
      coord[d] = rest % dims[d];
      rest = Math.floor(rest / dims[d]);
    }
    let o = 0;
    coord.forEach((c, d) => {
      if (!reduced.includes(d)) o = o * dims[d] + c;
    });
    const v = x[flat];
    if (count[o] === 0) acc[o] = v;
    else if (op === "sum" || op === "avg") acc[o] += v;
    else if (op === "prod") acc[o] *= v;
    else if (op === "max") acc[o] = Math.max(acc[o], v);
    else acc[o] = Math.min(acc[o], v);
    count[o]++;
  }
  return op === "avg" ? acc.map((s, i) => s / count[i]) : acc;
}

async function runReduce(
  dims: Dims,
  data: Float32Array | Int32Array,
  attrs: { op: Op; axes: number[]; keepDims?: boolean },
  dtype: DType = "float32",
) {
  const net = new Network();
  const x = net.input("x", dims, dtype);
  const y = net.markOutput(net.addReduce(x, attrs).output(), "y");
  const out = await runOnCpu(net, { x: data });
  return { y: out.y, dims: y.dims };
}

function expectKilnError(f: () => unknown, layer: string, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.layer, layer);
    assert.match(e.message, new RegExp(`Reduce layer "${layer}"`));
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("Reduce hand-derived cases on a 2x3 matrix", async () => {
  const m = new Float32Array([1, 2, 3, 4, 5, 6]);
  const cases: [Op, number[], boolean, number[], number[]][] = [
    ["sum", [1], false, [2], [6, 15]],
    ["sum", [0], true, [1, 3], [5, 7, 9]],
    ["prod", [1], false, [2], [6, 120]],
    ["max", [-1], false, [2], [3, 6]],
    ["min", [0], false, [3], [1, 2, 3]],
    ["avg", [0, 1], true, [1, 1], [3.5]],
    ["avg", [1, 0], false, [], [3.5]],
  ];
  for (const [op, axes, keepDims, dims, want] of cases) {
    const got = await runReduce([2, 3], m, { op, axes, keepDims });
    assert.deepEqual(got.dims, dims, `${op} ${axes} dims`);
    assert.deepEqual([...got.y], want, `${op} ${axes}`);
  }
});

Deno.test("Reduce matches the reference on random inputs, batch 2 of N, all axis sets", async () => {
  const r = rng(21);
  const item = [3, 4, 5];
  const batch = 2;
  const data = randomArray(batch * 60, r, 0.5, 1.5);
  const axisSets = [[1], [2], [3], [1, 2], [1, 3], [2, 3], [1, 2, 3], [-1, -3], [-2]];
  for (const op of ["sum", "prod", "max", "min", "avg"] as const) {
    for (const axes of axisSets) {
      for (const keepDims of [false, true]) {
        const got = await runReduce([N, ...item], data, { op, axes, keepDims });
        const norm = axes.map((a) => (a < 0 ? a + 4 : a));
        const wantDims = [N, ...item].flatMap((d, i) =>
          norm.includes(i) ? (keepDims ? [1] : []) : [d]
        );
        assert.deepEqual(got.dims, wantDims, `${op} ${axes} keepDims ${keepDims}`);
        const ref = referenceReduce(data, [batch, ...item], axes, op);
        assertClose(got.y, ref, { rtol: 1e-6, atol: 1e-6 }, `${op} ${axes} keepDims ${keepDims}`);
      }
    }
  }
});

Deno.test("Reduce over unbatched tensors and the leading axis", async () => {
  const r = rng(4);
  const data = randomArray(6 * 7, r, -3, 3);
  for (const op of ["sum", "max", "avg"] as const) {
    const got = await runReduce([6, 7], data, { op, axes: [0] });
    assertClose(got.y, referenceReduce(data, [6, 7], [0], op), { rtol: 1e-6 }, op);
  }
});

Deno.test("Reduce on int32: sum, prod, max, min in 32-bit integer arithmetic", async () => {
  const r = rng(8);
  const data = Int32Array.from({ length: 3 * 8 }, () => Math.floor(r() * 19) - 9 || 1);
  for (const op of ["sum", "prod", "max", "min"] as const) {
    const got = await runReduce([N, 8], data, { op, axes: [1] }, "int32");
    assert.ok(got.y instanceof Int32Array);
    const ref = referenceReduce(data, [3, 8], [1], op).map((v) => v | 0);
    assert.deepEqual([...got.y], ref, op);
  }
  // Wraps like 32-bit integers: 2^31 - 1 + 1 = -2^31.
  const wrap = await runReduce(
    [2],
    new Int32Array([2147483647, 1]),
    { op: "sum", axes: [0] },
    "int32",
  );
  assert.deepEqual([...wrap.y], [-2147483648]);
});

Deno.test("Reduce max and min propagate NaN", async () => {
  const data = new Float32Array([1, NaN, 3, 4, 5, 6]);
  const max = await runReduce([2, 3], data, { op: "max", axes: [1] });
  assert.ok(Number.isNaN(max.y[0]));
  assert.equal(max.y[1], 6);
  const min = await runReduce([2, 3], data, { op: "min", axes: [0] });
  assert.deepEqual([min.y[0], min.y[2]], [1, 3]);
  assert.ok(Number.isNaN(min.y[1]));
});

Deno.test("Reduce shortcuts: reduce, reduceSum, reduceMean, reduceMax", async () => {
  const r = rng(2);
  const data = randomArray(2 * 4 * 5, r);
  const net = new Network();
  const x = net.input("x", [N, 4, 5]);
  const sum = x.reduceSum(1);
  const mean = x.reduceMean([1, 2], true);
  const max = x.reduceMax(-1);
  const prod = x.reduce({ op: "prod", axes: [2], keepDims: true });
  assert.deepEqual(sum.dims, [N, 5]);
  assert.deepEqual(mean.dims, [N, 1, 1]);
  assert.deepEqual(max.dims, [N, 4]);
  assert.deepEqual(prod.dims, [N, 4, 1]);
  net.markOutput(sum, "sum");
  net.markOutput(mean, "mean");
  net.markOutput(max, "max");
  net.markOutput(prod, "prod");
  const out = await runOnCpu(net, { x: data });
  const dims = [2, 4, 5];
  assertClose(out.sum, referenceReduce(data, dims, [1], "sum"), {}, "sum");
  assertClose(out.mean, referenceReduce(data, dims, [1, 2], "avg"), {}, "mean");
  assertClose(out.max, referenceReduce(data, dims, [2], "max"), {}, "max");
  assertClose(out.prod, referenceReduce(data, dims, [2], "prod"), {}, "prod");
});

Deno.test("Reduce rejects bad attributes and shapes with errors naming the layer", () => {
  const net = new Network();
  const x = net.input("x", [N, 4, 6, 2]);
  expectKilnError(
    () => net.addReduce(x, { op: "sum", axes: [], name: "r_empty" }),
    "r_empty",
    /attribute "axes"/,
  );
  expectKilnError(
    () => net.addReduce(x, { op: "sum", axes: [1, 1], name: "r_dup" }),
    "r_dup",
    /axes must not repeat/,
  );
  expectKilnError(
    () => net.addReduce(x, { op: "sum", axes: [1, -3], name: "r_dup2" }),
    "r_dup2",
    /name axis 1 twice/,
  );
  expectKilnError(
    () => net.addReduce(x, { op: "sum", axes: [0], name: "r_batch" }),
    "r_batch",
    /symbolic batch/,
  );
  expectKilnError(
    () => net.addReduce(x, { op: "max", axes: [4], name: "r_range" }),
    "r_range",
    /axis 4 is out of range/,
  );
  expectKilnError(
    () => net.addReduce(x, { op: "max", axes: [1.5], name: "r_frac" }),
    "r_frac",
    /attribute "axes.0"/,
  );
  expectKilnError(
    // @ts-expect-error: "mean" is not an op of Reduce (it is "avg")
    () => net.addReduce(x, { op: "mean", axes: [1], name: "r_op" }),
    "r_op",
    /attribute "op"/,
  );
  const i = net.input("i", [N, 4], "int32");
  expectKilnError(
    () => net.addReduce(i, { op: "avg", axes: [1], name: "r_intavg" }),
    "r_intavg",
    /avg needs a float32 input/,
  );
});
