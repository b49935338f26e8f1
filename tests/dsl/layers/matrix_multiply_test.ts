import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import type { Dims } from "../../../dsl/ir/dims.ts";
import { N, Network } from "../../../dsl/network.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

/**
 * Direct formula: out[l, i, j] = Σ_p op(A)[l_A, i, p] · op(B)[l_B, p, j], where l_A and l_B are
 * the output's leading index aligned at the trailing end, with 0 wherever the operand has a 1.
 */
function referenceMatmul(
  aDims: number[],
  a: Float32Array,
  bDims: number[],
  b: Float32Array,
  tA: boolean,
  tB: boolean,
): { dims: number[]; y: Float64Array } {
  const ar = aDims.length, br = bDims.length;
  const m = tA ? aDims[ar - 1] : aDims[ar - 2], k = tA ? aDims[ar - 2] : aDims[ar - 1];
  const n = tB ? bDims[br - 2] : bDims[br - 1];
  const aLead = aDims.slice(0, -2), bLead = bDims.slice(0, -2);
  const rank = Math.max(aLead.length, bLead.length);
  const lead = Array.from({ length: rank }, (_, i) => {
    const x = aLead[aLead.length - rank + i] ?? 1, z = bLead[bLead.length - rank + i] ?? 1;
    return Math.max(x, z);
  });
  const count = lead.reduce((p, d) => p * d, 1);
  const y = new Float64Array(count * m * n);
  // Flat offset of an operand's matrix for the output's leading multi-index `idx`.
  const matrixAt = (opLead: number[], idx: number[]) => {
    let off = 0;
    for (let d = 0; d < opLead.length; d++) {
      const i = idx[rank - opLead.length + d];
      off = off * opLead[d] + (opLead[d] === 1 ? 0 : i);
    }
    return off;
  };
  for (let l = 0; l < count; l++) {
    const idx: number[] = [];
    for (let d = rank - 1, rest = l; d >= 0; d--) {
      idx[d] = rest % lead[d];
      rest = Math.floor(rest / lead[d]);
    }
    const ao = matrixAt(aLead, idx) * m * k, bo = matrixAt(bLead, idx) * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let p = 0; p < k; p++) {
          const av = tA ? a[ao + p * m + i] : a[ao + i * k + p];
          const bv = tB ? b[bo + j * k + p] : b[bo + p * n + j];
          acc += av * bv;
        }
        y[(l * m + i) * n + j] = acc;
      }
    }
  }
  return { dims: [...lead, m, n], y };
}

Deno.test("MatrixMultiply of 2x2 matrices, plain and transposed (by hand)", async () => {
  const net = new Network();
  const a = net.input("a", [2, 2]);
  const b = net.input("b", [2, 2]);
  net.markOutput(a.matmul(b), "ab");
  net.markOutput(a.matmul(b, { transposeA: true }), "atb");
  net.markOutput(a.matmul(b, { transposeB: true, bias: [100, 200] }), "abt");
  const out = await runOnCpu(net, {
    a: Float32Array.from([1, 2, 3, 4]),
    b: Float32Array.from([5, 6, 7, 8]),
  });
  assert.deepEqual(Array.from(out.ab), [19, 22, 43, 50]);
  assert.deepEqual(Array.from(out.atb), [26, 30, 38, 44]);
  assert.deepEqual(Array.from(out.abt), [117, 223, 139, 253]);
});

Deno.test("MatrixMultiply matches the direct formula with broadcasting (N, batch 3)", async () => {
  const r = rng(21);
  const batch = 3;
  // [A dims, B dims] with N standing for the batch; transposes are applied to the stored dims.
  const cases: { a: Dims; b: Dims; tA?: boolean; tB?: boolean }[] = [
    { a: [N, 3, 4], b: [4, 5] },
    { a: [N, 4, 3], b: [5, 4], tA: true, tB: true },
    { a: [N, 6], b: [6, 2] }, // the fully connected pattern: rows are the batch
    { a: [N, 1, 3, 4], b: [2, 4, 5] },
    { a: [3, 4], b: [N, 4, 5] },
    { a: [N, 2, 3, 4], b: [N, 1, 5, 4], tB: true },
    { a: [1, 4, 3], b: [N, 3, 4, 2], tA: true },
  ];
  for (const c of cases) {
    const net = new Network();
    const a = net.input("a", c.a);
    const b = net.input("b", c.b);
    const y = a.matmul(b, { transposeA: c.tA, transposeB: c.tB });
    net.markOutput(y, "y");
    const concrete = (d: Dims) => d.map((v) => (v === N ? batch : v as number));
    const aDims = concrete(c.a), bDims = concrete(c.b);
    const av = randomArray(aDims.reduce((p, d) => p * d, 1), r);
    const bv = randomArray(bDims.reduce((p, d) => p * d, 1), r);
    const ref = referenceMatmul(aDims, av, bDims, bv, !!c.tA, !!c.tB);
    assert.deepEqual(y.dims, [N, ...ref.dims.slice(1)], JSON.stringify(c));
    const out = await runOnCpu(net, { a: av, b: bv });
    assertClose(out.y, ref.y, { rtol: 1e-5, atol: 1e-6 }, JSON.stringify(c));
  }
});

Deno.test("MatrixMultiply epilogue: bias, activation and residual (batch 2)", async () => {
  const r = rng(22);
  const batch = 2;
  const av = randomArray(batch * 3 * 4, r), bv = randomArray(4 * 5, r);
  const bias = randomArray(5, r), res = randomArray(batch * 3 * 5, r);
  const ref = referenceMatmul([batch, 3, 4], av, [4, 5], bv, false, false);
  const withBias = ref.y.map((v, i) => v + bias[i % 5]);
  for (const residual of ["pre", "post"] as const) {
    const net = new Network();
    const a = net.input("a", [N, 3, 4]);
    const b = net.input("b", [4, 5]);
    const skip = net.input("skip", [N, 3, 5]);
    const layer = net.addMatrixMultiply([a, b, skip], {
      bias,
      activation: { type: "sigmoid" },
      residual,
    });
    net.markOutput(layer.output(), "y");
    const out = await runOnCpu(net, { a: av, b: bv, skip: res });
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    const want = withBias.map((v, i) => residual === "pre" ? sig(v + res[i]) : sig(v) + res[i]);
    assertClose(out.y, want, { rtol: 1e-5, atol: 1e-6 }, `residual ${residual}`);
  }
});

Deno.test("MatrixMultiply with Constant weights and a concrete batch", async () => {
  const r = rng(23);
  const wv = randomArray(4 * 3, r), xv = randomArray(2 * 5 * 4, r);
  const net = new Network();
  const x = net.input("x", [2, 5, 4]);
  const w = net.addConstant([], { dims: [4, 3], values: wv }).output();
  net.markOutput(x.matmul(w, { activation: { type: "relu" } }), "y");
  const ref = referenceMatmul([2, 5, 4], xv, [4, 3], wv, false, false);
  assertClose((await runOnCpu(net, { x: xv })).y, ref.y.map((v) => Math.max(0, v)), {
    rtol: 1e-5,
    atol: 1e-6,
  });
});

Deno.test("MatrixMultiply + Constant bias add + relu gives the same result once fused", async () => {
  // The builder folds the add and the relu into the layer's epilogue; the result must not change.
  const r = rng(24);
  const xv = randomArray(3 * 6, r), wv = randomArray(6 * 4, r), bv = randomArray(4, r);
  const net = new Network();
  const x = net.input("x", [N, 6]);
  const w = net.addConstant([], { dims: [6, 4], values: wv }).output();
  const b = net.addConstant([], { dims: [4], values: bv }).output();
  net.markOutput(x.matmul(w).add(b).relu(), "y");
  const ref = referenceMatmul([3, 6], xv, [6, 4], wv, false, false);
  const want = ref.y.map((v, i) => Math.max(0, v + bv[i % 4]));
  assertClose((await runOnCpu(net, { x: xv })).y, want, { rtol: 1e-5, atol: 1e-6 });
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

Deno.test("MatrixMultiply rejects bad shapes and attributes, naming the layer", () => {
  const net = new Network();
  const a = net.input("a", [N, 3, 4]);
  const b = net.input("b", [4, 5]);
  const v = net.input("v", [4]);
  const flat = net.input("flat", [N, 4]);
  const cases: [string, ReturnType<typeof net.input>[], Record<string, unknown>, string, RegExp][] =
    [
      ["m0", [a, v], {}, "SHAPE_MISMATCH", /rank 2 or more/],
      ["m1", [a, b], { transposeB: true }, "SHAPE_MISMATCH", /inner dims differ/],
      ["m2", [a, net.input("b3", [2, 4, 5])], {}, "SHAPE_MISMATCH", /do not broadcast/],
      ["m3", [flat, net.input("bn", [3, 5])], { transposeA: true }, "SHAPE_MISMATCH", /contracted/],
      ["m4", [flat, net.input("b34", [3, 4, 5])], {}, "SHAPE_MISMATCH", /would not lead/],
      ["m5", [a, b], { residual: "post" }, "SHAPE_MISMATCH", /third input/],
      ["m6", [a, b, a], { residual: "post" }, "SHAPE_MISMATCH", /residual input/],
      ["m7", [a, b], { bias: [1, 2, 3] }, "INVALID_ARGUMENT", /expected 5/],
      ["m8", [a, b], { transposeA: "yes" }, "INVALID_ATTRIBUTE", /transposeA/],
      ["m9", [a, net.input("bi", [4, 5], "int32")], {}, "SHAPE_MISMATCH", /int32/],
      ["m10", [a], {}, "INVALID_ARGUMENT", /2 to 3/],
    ];
  for (const [name, ins, args, code, pattern] of cases) {
    assertKilnError(
      () => net.addLayer("MatrixMultiply", ins, { name, ...args }),
      name,
      code,
      pattern,
    );
  }
});
