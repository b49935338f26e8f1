import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import { N, Network } from "../../../dsl/network.ts";
import { randomArray, rng, runOnCpu } from "../../_util.ts";

/**
 * Direct formula: out[a..., i..., b...] = data[a..., indices[i...] (from the end if negative),
 * b...], with a... the data dims before the axis and b... those after.
 */
function referenceGather(
  data: ArrayLike<number>,
  dataDims: number[],
  indices: ArrayLike<number>,
  indexDims: number[],
  axis: number,
): { dims: number[]; y: number[] } {
  const dims = [...dataDims.slice(0, axis), ...indexDims, ...dataDims.slice(axis + 1)];
  const total = dims.reduce((a, b) => a * b, 1);
  const y: number[] = [];
  for (let flat = 0; flat < total; flat++) {
    const idx: number[] = [];
    for (let d = dims.length - 1, rest = flat; d >= 0; d--) {
      idx[d] = rest % dims[d];
      rest = Math.floor(rest / dims[d]);
    }
    const before = idx.slice(0, axis);
    const at = idx.slice(axis, axis + indexDims.length);
    const after = idx.slice(axis + indexDims.length);
    const k = at.reduce((off, v, d) => off * indexDims[d] + v, 0);
    const row = indices[k] < 0 ? indices[k] + dataDims[axis] : indices[k];
    const src = [...before, row, ...after].reduce((off, v, d) => off * dataDims[d] + v, 0);
    y.push(data[src]);
  }
  return { dims, y };
}

Deno.test("Gather picks rows and columns, negative indices from the end (by hand)", async () => {
  const net = new Network();
  const data = net.input("data", [3, 2]);
  const rowsIdx = net.input("rows", [2], "int32");
  const colIdx = net.input("col", [1], "int32");
  net.markOutput(data.gather(rowsIdx), "r");
  net.markOutput(data.gather(colIdx, { axis: -1 }), "c");
  const out = await runOnCpu(net, {
    data: Float32Array.from([1, 2, 3, 4, 5, 6]),
    rows: Int32Array.from([2, -3]),
    col: Int32Array.from([1]),
  });
  assert.deepEqual(Array.from(out.r), [5, 6, 1, 2]);
  assert.deepEqual(net.tensors.get("c")!.dims, [3, 1]);
  assert.deepEqual(Array.from(out.c), [2, 4, 6]);
});

Deno.test("Gather as an embedding lookup: Constant [65, E] by indices [N, 1] (CharRNN)", async () => {
  const r = rng(41);
  const E = 8, batch = 4;
  const table = randomArray(65 * E, r);
  const net = new Network();
  const ids = net.input("ids", [N, 1], "int32");
  const emb = net.addConstant([], { dims: [65, E], values: table }).output();
  const y = emb.gather(ids, { name: "embed" });
  net.markOutput(y, "y");
  assert.deepEqual(y.dims, [N, 1, E]);
  const idv = Int32Array.from([0, 64, 17, -1]);
  const out = await runOnCpu(net, { ids: idv });
  const ref = referenceGather(table, [65, E], idv, [batch, 1], 0);
  assert.deepEqual(ref.dims, [batch, 1, E]);
  assert.deepEqual(Array.from(out.y), ref.y);
  // Another batch size through the same engine shape.
  const two = await runOnCpu(net, { ids: Int32Array.from([5, 6]) });
  assert.deepEqual(Array.from(two.y), Array.from(table.subarray(5 * E, 7 * E)));
});

Deno.test("Gather matches the direct formula on batched data (N, batch 3)", async () => {
  const r = rng(42);
  const batch = 3;
  const cases: { axis: number; indexDims: number[] }[] = [
    { axis: 2, indexDims: [2, 2] },
    { axis: -1, indexDims: [3] },
    { axis: 1, indexDims: [] }, // a scalar index drops the axis
  ];
  for (const { axis, indexDims } of cases) {
    const net = new Network();
    const data = net.input("data", [N, 3, 5, 2]);
    const ind = net.input("ind", indexDims, "int32");
    const y = net.addGather([data, ind], { axis }).output();
    net.markOutput(y, "y");
    const a = axis < 0 ? axis + 4 : axis;
    const dataDims = [batch, 3, 5, 2];
    const count = indexDims.reduce((p, d) => p * d, 1);
    const idv = Int32Array.from(
      { length: count },
      () => Math.floor(r() * 2 * dataDims[a]) - dataDims[a],
    );
    const dv = randomArray(batch * 30, r);
    const out = await runOnCpu(net, { data: dv, ind: idv });
    const ref = referenceGather(dv, dataDims, idv, indexDims, a);
    assert.deepEqual(y.dims, [N, ...ref.dims.slice(1)]);
    assert.deepEqual(Array.from(out.y), ref.y, `axis ${axis}`);
  }
});

Deno.test("Gather of int32 data with a concrete batch", async () => {
  const net = new Network();
  const data = net.input("data", [2, 4], "int32");
  const ind = net.input("ind", [3], "int32");
  const y = data.gather(ind, { axis: 1 });
  net.markOutput(y, "y");
  assert.equal(y.dtype, "int32");
  const out = await runOnCpu(net, {
    data: Int32Array.from([10, 11, 12, 13, 20, 21, 22, 23]),
    ind: Int32Array.from([3, 0, -2]),
  });
  assert.ok(out.y instanceof Int32Array);
  assert.deepEqual(Array.from(out.y), [13, 10, 12, 23, 20, 22]);
});

Deno.test("Gather refuses an index out of range at run time, naming the layer and index", async () => {
  const net = new Network();
  const ids = net.input("ids", [N, 1], "int32");
  const emb = net.addConstant([], { dims: [65, 2], values: randomArray(130, rng(43)) }).output();
  net.markOutput(emb.gather(ids, { name: "embed" }), "y");
  for (const bad of [65, -66, 1000]) {
    await assert.rejects(
      () => runOnCpu(net, { ids: Int32Array.from([3, bad]) }),
      (e: unknown) => {
        assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
        assert.equal(e.layer, "embed");
        assert.match(e.message, /"embed"/);
        assert.match(e.message, new RegExp(`index ${bad} \\(element 1 `));
        assert.match(e.message, /size 65/);
        return true;
      },
    );
  }
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

Deno.test("Gather rejects bad axes, batches and dtypes, naming the layer", () => {
  const net = new Network();
  const data = net.input("data", [N, 3, 4]);
  const table = net.input("table", [5, 4]);
  const ib = net.input("ib", [N, 2], "int32");
  const iu = net.input("iu", [2], "int32");
  const fi = net.input("fi", [2]);
  const half = net.input("half", [5, 4], "float16");
  const cases: [string, typeof data[], Record<string, unknown>, string, RegExp][] = [
    ["g0", [data, iu], { axis: 3 }, "SHAPE_MISMATCH", /out of range/],
    ["g1", [data, iu], { axis: 0 }, "SHAPE_MISMATCH", /symbolic batch/],
    ["g2", [data, ib], { axis: 1 }, "SHAPE_MISMATCH", /away from its first dim/],
    ["g3", [table, ib], { axis: 1 }, "SHAPE_MISMATCH", /away from its first dim/],
    ["g4", [table, fi], {}, "SHAPE_MISMATCH", /float32; expected int32/],
    ["g5", [half, iu], {}, "SHAPE_MISMATCH", /float16/],
    ["g6", [table, iu], { axis: "0" }, "INVALID_ATTRIBUTE", /axis/],
    ["g7", [table], {}, "INVALID_ARGUMENT", /takes 2 input/],
  ];
  for (const [name, ins, attrs, code, pattern] of cases) {
    assertKilnError(() => net.addLayer("Gather", ins, { name, ...attrs }), name, code, pattern);
  }
});
