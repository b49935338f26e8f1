import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import { N, Network } from "../../../dsl/network.ts";
import { randomArray, rng, runOnCpu } from "../../_util.ts";

/**
 * Direct formula: out[i0..ia..ir] = input_k[i0..(ia - offset_k)..ir] where input k is the one
 * whose slice [offset_k, offset_k + len_k) along the axis holds ia.
 */
function referenceConcat(
  parts: { dims: number[]; data: ArrayLike<number> }[],
  axis: number,
): { dims: number[]; data: number[] } {
  const dims = [...parts[0].dims];
  dims[axis] = parts.reduce((s, p) => s + p.dims[axis], 0);
  const total = dims.reduce((a, b) => a * b, 1);
  const data: number[] = [];
  for (let flat = 0; flat < total; flat++) {
    // Multi-index of `flat` in the output.
    const idx: number[] = [];
    let rest = flat;
    for (let d = dims.length - 1; d >= 0; d--) {
      idx[d] = rest % dims[d];
      rest = Math.floor(rest / dims[d]);
    }
    let k = 0, a = idx[axis];
    while (a >= parts[k].dims[axis]) a -= parts[k++].dims[axis];
    const src = parts[k];
    let off = 0;
    for (let d = 0; d < dims.length; d++) off = off * src.dims[d] + (d === axis ? a : idx[d]);
    data.push(src.data[off]);
  }
  return { dims, data };
}

Deno.test("Concatenation joins along axis 1 and axis 0 (by hand)", async () => {
  const net = new Network();
  const a = net.input("a", [2, 2]);
  const b = net.input("b", [2, 1]);
  const c = net.input("c", [1, 2]);
  net.markOutput(a.concat([b]), "ab");
  net.markOutput(net.addConcatenation([a, c], { axis: 0 }).output(), "ac");
  assert.deepEqual(net.tensors.get("ab")!.dims, [2, 3]);
  assert.deepEqual(net.tensors.get("ac")!.dims, [3, 2]);
  const out = await runOnCpu(net, {
    a: Float32Array.from([1, 2, 3, 4]),
    b: Float32Array.from([5, 6]),
    c: Float32Array.from([7, 8]),
  });
  assert.deepEqual(Array.from(out.ab), [1, 2, 5, 3, 4, 6]);
  assert.deepEqual(Array.from(out.ac), [1, 2, 3, 4, 7, 8]);
});

Deno.test("Concatenation matches the direct formula on batched inputs (N, batch 3)", async () => {
  const r = rng(11);
  const batch = 3;
  const shapes = [[2, 3, 4], [5, 3, 4], [1, 3, 4]];
  const cases: { axis: number; shapes: number[][] }[] = [
    { axis: 1, shapes },
    { axis: 2, shapes: [[2, 1, 4], [2, 3, 4]] },
    { axis: -1, shapes: [[2, 3, 1], [2, 3, 4], [2, 3, 2]] },
    { axis: 3, shapes: [[2, 3, 4]] }, // a single input is a copy
  ];
  for (const { axis, shapes } of cases) {
    const net = new Network();
    const ins = shapes.map((s, i) => net.input(`x${i}`, [N, ...s]));
    const y = ins[0].concat(ins.slice(1), { axis, name: "cat" });
    net.markOutput(y, "y");
    assert.equal(y.producer?.name, "cat");
    const data = shapes.map((s) => randomArray(batch * s.reduce((a, b) => a * b, 1), r));
    const feeds = Object.fromEntries(data.map((d, i) => [`x${i}`, d]));
    const out = await runOnCpu(net, feeds);
    const a = axis < 0 ? axis + 4 : axis;
    const ref = referenceConcat(shapes.map((s, i) => ({ dims: [batch, ...s], data: data[i] })), a);
    assert.deepEqual(y.dims, [N, ...ref.dims.slice(1)]);
    // A concatenation only moves values: exact equality.
    assert.deepEqual(Array.from(out.y), ref.data, `axis ${axis}`);
  }
});

Deno.test("Concatenation of int32 tensors with a concrete batch of 2", async () => {
  const net = new Network();
  const a = net.input("a", [2, 3], "int32");
  const b = net.input("b", [2, 2], "int32");
  const y = a.concat([b], { axis: -1 });
  net.markOutput(y, "y");
  assert.equal(y.dtype, "int32");
  const av = Int32Array.from([1, -2, 3, 4, 5, -6]), bv = Int32Array.from([70, 80, 90, 100]);
  const out = await runOnCpu(net, { a: av, b: bv });
  assert.ok(out.y instanceof Int32Array);
  assert.deepEqual(Array.from(out.y), [1, -2, 3, 70, 80, 4, 5, -6, 90, 100]);
});

function assertKilnError(f: () => unknown, layer: string, code: string, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.code, code);
    assert.equal(e.layer, layer);
    assert.match(e.message, new RegExp(`"${layer}"`));
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("Concatenation rejects bad axes, shapes and dtypes, naming the layer", () => {
  const net = new Network();
  const a = net.input("a", [N, 2, 3]);
  const b = net.input("b", [N, 2, 4]);
  const u = net.input("u", [4, 2, 3]);
  const i = net.input("i", [N, 2, 3], "int32");
  const h = net.input("h", [N, 2, 3], "float16");
  assertKilnError(
    () => net.addConcatenation([a, a], { name: "c0", axis: 0 }),
    "c0",
    "SHAPE_MISMATCH",
    /symbolic batch/,
  );
  assertKilnError(
    () => net.addConcatenation([a, b], { name: "c1", axis: 1 }),
    "c1",
    "SHAPE_MISMATCH",
    /dim 2/,
  );
  assertKilnError(
    () => net.addConcatenation([a, u], { name: "c2", axis: 1 }),
    "c2",
    "SHAPE_MISMATCH",
    /dim 0/,
  );
  assertKilnError(
    () => net.addConcatenation([a, i], { name: "c3" }),
    "c3",
    "SHAPE_MISMATCH",
    /int32/,
  );
  assertKilnError(
    () => net.addConcatenation([a, a], { name: "c4", axis: 3 }),
    "c4",
    "SHAPE_MISMATCH",
    /out of range/,
  );
  assertKilnError(
    () => net.addConcatenation([a, net.input("r", [N, 2])], { name: "c5" }),
    "c5",
    "SHAPE_MISMATCH",
    /rank/,
  );
  assertKilnError(
    () => net.addConcatenation([a], { name: "c6", axis: 1.5 }),
    "c6",
    "INVALID_ATTRIBUTE",
    /axis/,
  );
  assertKilnError(
    () => net.addConcatenation([h, h], { name: "c7" }),
    "c7",
    "SHAPE_MISMATCH",
    /float16/,
  );
  assertKilnError(() => net.addConcatenation([], { name: "c8" }), "c8", "INVALID_ARGUMENT", /1/);
  assert.throws(
    () => (a.concat as (x: unknown) => unknown)(b),
    (e: unknown) => e instanceof KilnError && /array/.test(e.message),
  );
});
