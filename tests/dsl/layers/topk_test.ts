import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import { type Dims, N } from "../../../dsl/ir/dims.ts";
import type { DType } from "../../../dsl/ir/dtype.ts";
import { Network } from "../../../dsl/network.ts";
import { randomArray, rng, runOnCpu } from "../../_util.ts";

/**
 * Reference: for every slice along `axis`, sort (value, index) pairs with a stable sort on the
 * value alone (largest first for max) and keep the first k. A stable sort keeps equal values in
 * index order, which is exactly the tie rule.
 */
function referenceTopK(
  x: ArrayLike<number>,
  dims: number[],
  axis: number,
  k: number,
  op: "max" | "min",
): { values: number[]; indices: number[] } {
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const len = dims[axis];
  const values = new Array<number>(outer * k * inner);
  const indices = new Array<number>(outer * k * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const pairs = Array.from({ length: len }, (_, j) => ({
        v: x[(o * len + j) * inner + i],
        j,
      }));
      pairs.sort((a, b) => (op === "max" ? b.v - a.v : a.v - b.v));
      for (let r = 0; r < k; r++) {
        values[(o * k + r) * inner + i] = pairs[r].v;
        indices[(o * k + r) * inner + i] = pairs[r].j;
      }
    }
  }
  return { values, indices };
}

async function runTopK(
  dims: Dims,
  data: Float32Array | Int32Array,
  attrs: { op: "max" | "min"; k: number; axis?: number },
  dtype: DType = "float32",
) {
  const net = new Network();
  const x = net.input("x", dims, dtype);
  const layer = net.addTopK(x, attrs);
  net.markOutput(layer.output(0), "values");
  net.markOutput(layer.output(1), "indices");
  const out = await runOnCpu(net, { x: data });
  return { values: out.values, indices: out.indices as Int32Array };
}

function expectKilnError(f: () => unknown, layer: string, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.layer, layer);
    assert.match(e.message, new RegExp(`TopK layer "${layer}"`));
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("TopK hand-derived cases: sorted values, lower index first on ties", async () => {
  const data = new Float32Array([3, 1, 3, 2, -5, 0.5, 0.5, 7]);
  const max = await runTopK([2, 4], data, { op: "max", k: 2 });
  assert.deepEqual([...max.values], [3, 3, 7, 0.5]);
  assert.deepEqual([...max.indices], [0, 2, 3, 1]);
  const min = await runTopK([2, 4], data, { op: "min", k: 3 });
  assert.deepEqual([...min.values], [1, 2, 3, -5, 0.5, 0.5]);
  assert.deepEqual([...min.indices], [1, 3, 0, 0, 1, 2]);
  // Along axis 0 of a [3, 2] matrix.
  const cols = await runTopK([3, 2], new Float32Array([1, 6, 4, 5, 2, 6]), {
    op: "max",
    k: 2,
    axis: 0,
  });
  assert.deepEqual([...cols.values], [4, 6, 2, 6]);
  assert.deepEqual([...cols.indices], [1, 0, 2, 2]);
});

Deno.test("TopK ranks NaN above every number", async () => {
  const data = new Float32Array([1, NaN, 3, NaN]);
  const max = await runTopK([1, 4], data, { op: "max", k: 3 });
  assert.deepEqual([...max.indices], [1, 3, 2]);
  assert.ok(Number.isNaN(max.values[0]) && Number.isNaN(max.values[1]));
  assert.equal(max.values[2], 3);
  const min = await runTopK([1, 4], data, { op: "min", k: 3 });
  assert.deepEqual([...min.indices], [0, 2, 1]);
});

Deno.test("TopK matches the reference on random inputs, every axis, batch 3 of N", async () => {
  const r = rng(7);
  const item = [4, 9, 6];
  const batch = 3;
  const data = randomArray(batch * 4 * 9 * 6, r, -2, 2);
  for (const op of ["max", "min"] as const) {
    for (const [axis, k] of [[1, 2], [2, 9], [-1, 3], [3, 6], [-3, 1]]) {
      const got = await runTopK([N, ...item], data, { op, k, axis });
      const ref = referenceTopK(data, [batch, ...item], axis < 0 ? axis + 4 : axis, k, op);
      assert.deepEqual([...got.values], ref.values.map(Math.fround), `${op} axis ${axis} k ${k}`);
      assert.deepEqual([...got.indices], ref.indices, `${op} axis ${axis} k ${k} indices`);
    }
  }
});

Deno.test("TopK selects correctly from long rows full of ties (heap path)", async () => {
  const r = rng(11);
  const len = 300;
  // Values from a small set so that ties are everywhere.
  const data = new Float32Array(2 * len).map(() => Math.floor(r() * 7) - 3 || 0.5);
  for (const op of ["max", "min"] as const) {
    for (const k of [5, 64, len]) {
      const got = await runTopK([2, len], data, { op, k });
      const ref = referenceTopK(data, [2, len], 1, k, op);
      assert.deepEqual([...got.values], ref.values, `${op} k ${k}`);
      assert.deepEqual([...got.indices], ref.indices, `${op} k ${k} indices`);
    }
  }
});

Deno.test("TopK takes int32 inputs and keeps their dtype", async () => {
  const r = rng(3);
  const data = Int32Array.from({ length: 2 * 10 }, () => Math.floor(r() * 2001) - 1000);
  const got = await runTopK([N, 10], data, { op: "min", k: 4 }, "int32");
  assert.ok(got.values instanceof Int32Array);
  const ref = referenceTopK(data, [2, 10], 1, 4, "min");
  assert.deepEqual([...got.values], ref.values);
  assert.deepEqual([...got.indices], ref.indices);
});

Deno.test("TopK shapes: values keep the input dtype, indices are int32, N kept", () => {
  const net = new Network();
  const x = net.input("x", [N, 5, 8]);
  const layer = net.addTopK(x, { op: "max", k: 3, axis: 1 });
  assert.deepEqual(layer.output(0).dims, [N, 3, 8]);
  assert.equal(layer.output(0).dtype, "float32");
  assert.deepEqual(layer.output(1).dims, [N, 3, 8]);
  assert.equal(layer.output(1).dtype, "int32");
  assert.equal(layer.attrs.axis, 1);
  assert.equal(net.addTopK(x, { op: "min", k: 1 }).attrs.axis, -1);
  const v = x.topk({ op: "max", k: 2 });
  assert.deepEqual(v.dims, [N, 5, 2]);
  assert.equal(v.dtype, "float32");
});

Deno.test("TopK argmax/argmin shortcuts return int32 indices", async () => {
  const r = rng(5);
  const data = randomArray(2 * 3 * 7, r);
  const net = new Network();
  const x = net.input("x", [N, 3, 7]);
  const amax = x.argmax();
  const amin = x.argmin(1);
  assert.deepEqual(amax.dims, [N, 3, 1]);
  assert.deepEqual(amin.dims, [N, 1, 7]);
  assert.equal(amax.dtype, "int32");
  net.markOutput(amax, "amax");
  net.markOutput(amin, "amin");
  const out = await runOnCpu(net, { x: data });
  assert.deepEqual([...out.amax], referenceTopK(data, [2, 3, 7], 2, 1, "max").indices);
  assert.deepEqual([...out.amin], referenceTopK(data, [2, 3, 7], 1, 1, "min").indices);
});

Deno.test("TopK rejects bad attributes and shapes with errors naming the layer", () => {
  const net = new Network();
  const x = net.input("x", [N, 4, 6]);
  expectKilnError(
    () => net.addTopK(x, { op: "max", k: 7, name: "tk_big" }),
    "tk_big",
    /k = 7 exceeds the length 6/,
  );
  expectKilnError(
    () => net.addTopK(x, { op: "max", k: 0, name: "tk_zero" }),
    "tk_zero",
    /attribute "k"/,
  );
  expectKilnError(
    () => net.addTopK(x, { op: "max", k: 1.5, name: "tk_frac" }),
    "tk_frac",
    /attribute "k"/,
  );
  expectKilnError(
    // @ts-expect-error: "mean" is not an op of TopK
    () => net.addTopK(x, { op: "mean", k: 1, name: "tk_op" }),
    "tk_op",
    /attribute "op"/,
  );
  expectKilnError(
    () => net.addTopK(x, { op: "min", k: 1, axis: 3, name: "tk_axis" }),
    "tk_axis",
    /axis 3 is out of range/,
  );
  expectKilnError(
    () => net.addTopK(x, { op: "min", k: 1, axis: -3, name: "tk_batch" }),
    "tk_batch",
    /symbolic batch/,
  );
  const h = net.input("h", [4, 6], "float16");
  expectKilnError(
    () => net.addTopK(h, { op: "max", k: 1, name: "tk_dtype" }),
    "tk_dtype",
    /float16; expected float32 or int32/,
  );
});
