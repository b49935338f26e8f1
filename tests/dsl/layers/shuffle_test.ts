import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import { N, Network } from "../../../dsl/network.ts";
import { randomArray, rng, runOnCpu } from "../../_util.ts";

function unflatten(flat: number, dims: number[]): number[] {
  const idx: number[] = [];
  for (let d = dims.length - 1; d >= 0; d--) {
    idx[d] = flat % dims[d];
    flat = Math.floor(flat / dims[d]);
  }
  return idx;
}

function flatten(idx: number[], dims: number[]): number {
  return idx.reduce((off, v, d) => off * dims[d] + v, 0);
}

/**
 * Direct formula, element by element: an output index goes back through the second transpose
 * (reshaped[p2[i]] = out[i]), through the reshape (same row-major position in the transposed
 * input) and through the first transpose (input[p1[i]] = transposed[i]).
 */
function referenceShuffle(
  x: ArrayLike<number>,
  inDims: number[],
  p1: number[],
  reshaped: number[],
  p2: number[],
): number[] {
  const t1Dims = p1.map((p) => inDims[p]);
  const outDims = p2.map((p) => reshaped[p]);
  const total = outDims.reduce((a, b) => a * b, 1);
  const y: number[] = [];
  for (let o = 0; o < total; o++) {
    const oi = unflatten(o, outDims);
    const ri: number[] = [];
    p2.forEach((p, i) => (ri[p] = oi[i]));
    const ti = unflatten(flatten(ri, reshaped), t1Dims);
    const xi: number[] = [];
    p1.forEach((p, i) => (xi[p] = ti[i]));
    y.push(x[flatten(xi, inDims)]);
  }
  return y;
}

const iota = (n: number) => Array.from({ length: n }, (_, i) => i);

Deno.test("Shuffle transposes, reshapes and flattens (by hand)", async () => {
  const net = new Network();
  const x = net.input("x", [2, 3]);
  net.markOutput(x.transpose([1, 0]), "t");
  net.markOutput(x.reshape([3, -1]), "r");
  net.markOutput(x.shuffle({ reshape: [3, 2], secondTranspose: [1, 0] }), "rt");
  net.markOutput(x.flatten(0), "f");
  const out = await runOnCpu(net, { x: Float32Array.from([1, 2, 3, 4, 5, 6]) });
  assert.deepEqual(Array.from(out.t), [1, 4, 2, 5, 3, 6]);
  assert.deepEqual(Array.from(out.r), [1, 2, 3, 4, 5, 6]);
  // [[1,2],[3,4],[5,6]] transposed.
  assert.deepEqual(Array.from(out.rt), [1, 3, 5, 2, 4, 6]);
  assert.deepEqual(net.tensors.get("r")!.dims, [3, 2]);
  assert.deepEqual(net.tensors.get("f")!.dims, [6]);
});

Deno.test("Shuffle matches the direct formula on batched inputs (N, batch 3)", async () => {
  const r = rng(31);
  const batch = 3;
  const cases: {
    attrs: Record<string, unknown>;
    dims: (number | "N")[];
    p1: number[];
    reshaped: number[];
    p2: number[];
  }[] = [
    {
      attrs: { firstTranspose: [0, 2, 3, 1], reshape: [0, -1, 2], secondTranspose: [0, 2, 1] },
      dims: [N, 2, 6, 2],
      p1: [0, 2, 3, 1],
      reshaped: [batch, 12, 2],
      p2: [0, 2, 1],
    },
    {
      attrs: { reshape: [0, 0, -1] },
      dims: [N, 2, 3, 4],
      p1: [0, 1, 2, 3],
      reshaped: [batch, 2, 12],
      p2: [0, 1, 2],
    },
    {
      attrs: { reshape: [N, 4, -1, 3], secondTranspose: [0, 3, 1, 2] },
      dims: [N, 2, 3, 4],
      p1: [0, 1, 2, 3],
      reshaped: [batch, 4, 2, 3],
      p2: [0, 3, 1, 2],
    },
    {
      attrs: { firstTranspose: [0, 3, 1, 2] },
      dims: [N, 5, 1, 3],
      p1: [0, 3, 1, 2],
      reshaped: [batch, 3, 5, 1],
      p2: [0, 1, 2, 3],
    },
  ];
  for (const c of cases) {
    const net = new Network();
    const x = net.input("x", c.dims);
    const y = x.shuffle(c.attrs);
    net.markOutput(y, "y");
    const inDims = c.dims.map((d) => (d === N ? batch : d));
    const data = randomArray(inDims.reduce((a, b) => a * b, 1), r);
    const out = await runOnCpu(net, { x: data });
    assert.deepEqual(y.dims, [N, ...c.p2.map((p) => c.reshaped[p]).slice(1)]);
    // A shuffle only moves values: exact equality.
    assert.deepEqual(
      Array.from(out.y),
      referenceShuffle(data, inDims, c.p1, c.reshaped, c.p2),
      JSON.stringify(c.attrs),
    );
  }
});

Deno.test("Shuffle of an unbatched int32 tensor, and flatten on a concrete batch", async () => {
  const net = new Network();
  const x = net.input("x", [2, 3, 4], "int32");
  const y = x.shuffle({
    firstTranspose: [2, 0, 1],
    reshape: [2, 0, -1],
    secondTranspose: [1, 2, 0],
  });
  net.markOutput(y, "y");
  const z = net.input("z", [2, 3, 2, 2]);
  net.markOutput(z.flatten(), "f1");
  net.markOutput(z.flatten(2), "f2");
  net.markOutput(z.flatten(-1), "f3");
  assert.deepEqual(y.dims, [2, 6, 2]);
  assert.deepEqual(net.tensors.get("f1")!.dims, [2, 12]);
  assert.deepEqual(net.tensors.get("f2")!.dims, [2, 3, 4]);
  assert.deepEqual(net.tensors.get("f3")!.dims, [2, 3, 2, 2]);
  const xv = Int32Array.from(iota(24), (v) => v * 7 - 50);
  const zv = randomArray(24, rng(32));
  const out = await runOnCpu(net, { x: xv, z: zv });
  assert.ok(out.y instanceof Int32Array);
  // After [2,0,1] the dims are [4,2,3]; reshape [2, 0 (copy 2), -1] = [2,2,6]; then [1,2,0].
  assert.deepEqual(
    Array.from(out.y),
    referenceShuffle(xv, [2, 3, 4], [2, 0, 1], [2, 2, 6], [1, 2, 0]),
  );
  assert.deepEqual(Array.from(out.f2), Array.from(zv));
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

Deno.test("Shuffle rejects bad permutations and reshapes, naming the layer", () => {
  const net = new Network();
  const x = net.input("x", [N, 2, 3, 4]);
  const u = net.input("u", [2, 3, 4]);
  const cases: [string, typeof x, Record<string, unknown>, string, RegExp][] = [
    ["s0", x, { firstTranspose: [1, 0, 2, 3] }, "SHAPE_MISMATCH", /batch dim N first/],
    ["s1", x, { firstTranspose: [0, 1, 1, 3] }, "SHAPE_MISMATCH", /not a permutation/],
    ["s2", x, { firstTranspose: [0, 1, 2] }, "SHAPE_MISMATCH", /not a permutation/],
    ["s3", x, { reshape: [0, -1, -1] }, "SHAPE_MISMATCH", /more than one -1/],
    ["s4", x, { reshape: [0, 5, 5] }, "SHAPE_MISMATCH", /25 elements per batch item.* 24/],
    ["s5", x, { reshape: [0, 5, -1] }, "SHAPE_MISMATCH", /cannot be inferred/],
    ["s6", x, { reshape: [-1, 24] }, "SHAPE_MISMATCH", /keep the batch/],
    ["s7", u, { reshape: [0, 0, 0, 0] }, "SHAPE_MISMATCH", /no dim 3/],
    ["s8", u, { reshape: [N, -1] }, "SHAPE_MISMATCH", /"N" may only/],
    ["s9", x, { reshape: [0, -2, 12] }, "INVALID_ATTRIBUTE", /reshape/],
    ["s10", x, { reshape: [0, 24], secondTranspose: [1, 0] }, "SHAPE_MISMATCH", /secondTranspose/],
    ["s11", x, { firstTranspose: [0, 1.5, 2, 3] }, "INVALID_ATTRIBUTE", /firstTranspose/],
  ];
  for (const [name, input, attrs, code, pattern] of cases) {
    assertKilnError(() => net.addShuffle(input, { name, ...attrs }), name, code, pattern);
  }
  assert.throws(
    () => x.flatten(5),
    (e: unknown) => e instanceof KilnError && e.tensor === "x" && /flatten\(5\)/.test(e.message),
  );
  assertKilnError(
    () => x.shuffle({ name: "s12", reshape: [-1] }),
    "s12",
    "SHAPE_MISMATCH",
    /batch/,
  );
});
