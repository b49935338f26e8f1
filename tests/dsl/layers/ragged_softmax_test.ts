import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import { type Dims, N } from "../../../dsl/ir/dims.ts";
import { Network } from "../../../dsl/network.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

/** Reference: y_j = e^(x_j) / Σ_(i<b) e^(x_i) for j < b, and 0 after the bound (no max shift). */
function referenceRagged(x: ArrayLike<number>, bounds: ArrayLike<number>, len: number): number[] {
  const y: number[] = [];
  for (let r = 0; r < bounds.length; r++) {
    let denom = 0;
    for (let i = 0; i < bounds[r]; i++) denom += Math.exp(x[r * len + i]);
    for (let j = 0; j < len; j++) y.push(j < bounds[r] ? Math.exp(x[r * len + j]) / denom : 0);
  }
  return y;
}

function buildRagged(scoreDims: Dims, boundDims: Dims): Network {
  const net = new Network();
  const x = net.input("x", scoreDims);
  const b = net.input("bounds", boundDims, "int32");
  net.markOutput(x.raggedSoftmax(b), "y");
  return net;
}

function expectShapeError(f: () => unknown, layer: string, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.layer, layer);
    assert.match(e.message, new RegExp(`RaggedSoftMax layer "${layer}"`));
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("RaggedSoftMax hand-derived rows: bounds 2, 0, 4 and 1", async () => {
  const net = buildRagged([4, 4], [4, 1]);
  const row = [1, 2, 3, 4];
  const out = await runOnCpu(net, {
    x: new Float32Array([...row, ...row, ...row, ...row]),
    bounds: new Int32Array([2, 0, 4, 1]),
  });
  const e = Math.E;
  const full = row.map((v) => Math.exp(v) / (e + e ** 2 + e ** 3 + e ** 4));
  assertClose(out.y, [
    ...[1 / (1 + e), e / (1 + e), 0, 0],
    ...[0, 0, 0, 0],
    ...full,
    ...[1, 0, 0, 0],
  ], { rtol: 1e-6 });
});

Deno.test("RaggedSoftMax matches the reference on random inputs, batch 3 of N", async () => {
  const r = rng(29);
  const [batch, rows, len] = [3, 4, 7];
  const x = randomArray(batch * rows * len, r, -4, 4);
  const bounds = Int32Array.from({ length: batch * rows }, () => Math.floor(r() * (len + 1)));
  bounds[0] = len; // make sure the full row and an empty row both occur
  bounds[1] = 0;
  const out = await runOnCpu(buildRagged([N, rows, len], [N, rows, 1]), { x, bounds });
  assert.equal(out.y.length, batch * rows * len);
  assertClose(out.y, referenceRagged(x, bounds, len), { rtol: 1e-6, atol: 1e-7 });
});

Deno.test("RaggedSoftMax on an unbatched [Z, S] and on rows of the batch [N, S]", async () => {
  const r = rng(31);
  const x = randomArray(5 * 9, r, -2, 2);
  const bounds = Int32Array.from({ length: 5 }, (_, i) => 2 * i);
  const a = await runOnCpu(buildRagged([5, 9], [5, 1]), { x, bounds });
  assertClose(a.y, referenceRagged(x, bounds, 9), { rtol: 1e-6, atol: 1e-7 });
  const b = await runOnCpu(buildRagged([N, 9], [N, 1]), { x, bounds });
  assertClose(b.y, referenceRagged(x, bounds, 9), { rtol: 1e-6, atol: 1e-7 });
});

Deno.test("RaggedSoftMax refuses a bound outside [0, S] at run time, naming the layer", async () => {
  for (const bad of [8, -1]) {
    const net = buildRagged([N, 2, 7], [N, 2, 1]);
    await assert.rejects(
      runOnCpu(net, { x: new Float32Array(14).fill(1), bounds: new Int32Array([3, bad]) }),
      (e: unknown) => {
        assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
        assert.equal(e.layer, net.layers[0].name);
        assert.match(e.message, new RegExp(`bound ${bad} of row 1 is outside \\[0, 7\\]`));
        return true;
      },
    );
  }
});

Deno.test("RaggedSoftMax shape and dtype errors name the layer", () => {
  const net = new Network();
  const x = net.input("x", [N, 4, 6]);
  const cases: [string, Dims, "int32" | "float32", RegExp][] = [
    ["rs_rank", [N, 4], "int32", /expected \[N,4,1\], got \[N,4\]/],
    ["rs_rows", [N, 3, 1], "int32", /expected \[N,4,1\], got \[N,3,1\]/],
    ["rs_wide", [N, 4, 2], "int32", /expected \[N,4,1\]/],
    ["rs_float", [N, 4, 1], "float32", /input 1 .* is float32; expected int32/],
  ];
  for (const [name, dims, dtype, pattern] of cases) {
    const b = net.input(`b_${name}`, dims, dtype);
    expectShapeError(() => net.addRaggedSoftMax([x, b], { name }), name, pattern);
  }
  const x4 = net.input("x4", [N, 2, 4, 6]);
  const b4 = net.input("b4", [N, 2, 4, 1], "int32");
  expectShapeError(() => net.addRaggedSoftMax([x4, b4], { name: "rs_4d" }), "rs_4d", /rank 2 or 3/);
  const b = net.input("b", [N, 4, 1], "int32");
  assert.throws(() => net.addRaggedSoftMax([x], { name: "rs_one" }), /takes 2 input/);
  assert.deepEqual(x.raggedSoftmax(b).dims, [N, 4, 6]);
});

Deno.test("RaggedSoftMax takes no attributes", () => {
  const net = new Network();
  const x = net.input("x", [N, 4, 6]);
  const b = net.input("b", [N, 4, 1], "int32");
  expectShapeError(
    // @ts-expect-error: RaggedSoftMax has no attributes
    () => net.addRaggedSoftMax([x, b], { axis: 1, name: "rs_attr" }),
    "rs_attr",
    /axis/,
  );
});
