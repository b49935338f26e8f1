import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import { N, Network } from "../../../dsl/network.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

interface Geometry {
  c: number;
  h: number;
  w: number;
  outputs: number;
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number];
  postPadding: [number, number];
  dilation: [number, number];
  groups: number;
  outputPadding: [number, number];
}

/**
 * Direct formula, gather form: y[b,o,oy,ox] = bias[o] + Σ x[b,c,iy,ix]·W[c, o mod kg, i, j] over
 * the input channels c of o's group and the taps (i, j) with oy = iy·sh - ph + i·dh (same for x).
 */
function referenceDeconv(
  g: Geometry,
  batch: number,
  x: Float32Array,
  wt: Float32Array,
  bias?: Float32Array,
): { dims: number[]; y: Float32Array } {
  const { c, h, w, outputs: k, kernel: [kh, kw], stride: [sh, sw], groups } = g;
  const [ph, pw] = g.padding, [qh, qw] = g.postPadding, [dh, dw] = g.dilation;
  const oh = (h - 1) * sh - ph - qh + dh * (kh - 1) + 1 + g.outputPadding[0];
  const ow = (w - 1) * sw - pw - qw + dw * (kw - 1) + 1 + g.outputPadding[1];
  const cg = c / groups, kg = k / groups;
  const y = new Float32Array(batch * k * oh * ow);
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < k; o++) {
      const grp = Math.floor(o / kg);
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          let acc = bias ? bias[o] : 0;
          for (let ci = grp * cg; ci < (grp + 1) * cg; ci++) {
            for (let i = 0; i < kh; i++) {
              const ty = oy + ph - i * dh;
              if (ty < 0 || ty % sh !== 0 || ty / sh >= h) continue;
              const iy = ty / sh;
              for (let j = 0; j < kw; j++) {
                const tx = ox + pw - j * dw;
                if (tx < 0 || tx % sw !== 0 || tx / sw >= w) continue;
                const ix = tx / sw;
                acc += x[((b * c + ci) * h + iy) * w + ix] *
                  wt[((ci * kg + (o % kg)) * kh + i) * kw + j];
              }
            }
          }
          y[((b * k + o) * oh + oy) * ow + ox] = acc;
        }
      }
    }
  }
  return { dims: [batch, k, oh, ow], y };
}

function geometry(over: Partial<Geometry>): Geometry {
  return {
    c: 2,
    h: 3,
    w: 4,
    outputs: 3,
    kernel: [3, 3],
    stride: [1, 1],
    padding: [0, 0],
    postPadding: [0, 0],
    dilation: [1, 1],
    groups: 1,
    outputPadding: [0, 0],
    ...over,
  };
}

async function runCase(g: Geometry, batch: number, seed: number): Promise<void> {
  const r = rng(seed);
  const x = randomArray(batch * g.c * g.h * g.w, r);
  const wt = randomArray(g.c * (g.outputs / g.groups) * g.kernel[0] * g.kernel[1], r);
  const bias = randomArray(g.outputs, r);
  const net = new Network();
  const input = net.input("x", [N, g.c, g.h, g.w]);
  const { c: _c, h: _h, w: _w, ...attrs } = g;
  const y = input.deconv({ ...attrs, weights: wt, bias });
  net.markOutput(y, "y");
  const ref = referenceDeconv(g, batch, x, wt, bias);
  assert.deepEqual(y.dims, [N, ...ref.dims.slice(1)]);
  const out = await runOnCpu(net, { x });
  assertClose(out.y, ref.y, { rtol: 1e-5, atol: 1e-5 }, `deconv ${JSON.stringify(attrs)}`);
}

Deno.test("Deconvolution stride 1 with a ones kernel sums overlapping patches (by hand)", async () => {
  const net = new Network();
  const x = net.input("x", [1, 1, 2, 2]);
  const y = net.addDeconvolution(x, { outputs: 1, kernel: 2, weights: [1, 1, 1, 1] }).output();
  net.markOutput(y, "y");
  assert.deepEqual(y.dims, [1, 1, 3, 3]);
  const out = await runOnCpu(net, { x: Float32Array.from([1, 2, 3, 4]) });
  // Each input pixel adds itself to the 2×2 block below-right of it.
  assert.deepEqual(Array.from(out.y), [1, 3, 2, 4, 10, 6, 3, 7, 4]);
});

Deno.test("Deconvolution stride 2 tiles scaled kernels, with bias and cropping (by hand)", async () => {
  const net = new Network();
  const x = net.input("x", [1, 1, 2, 2]);
  const y = x.deconv({
    outputs: 1,
    kernel: 2,
    stride: 2,
    padding: [1, 0],
    postPadding: [0, 1],
    weights: [1, 2, 3, 4],
    bias: [10],
  });
  net.markOutput(y, "y");
  // The full 4×4 output tiles v·[[1,2],[3,4]] for v = 1, 2 / 3, 4:
  //   1 2 2 4 / 3 4 6 8 / 3 6 4 8 / 9 12 12 16
  // padding [1, 0] crops the first row, postPadding [0, 1] the last column; then + bias 10.
  assert.deepEqual(y.dims, [1, 1, 3, 3]);
  const out = await runOnCpu(net, { x: Float32Array.from([1, 2, 3, 4]) });
  assert.deepEqual(Array.from(out.y), [13, 14, 16, 13, 16, 14, 19, 22, 22]);
});

Deno.test("Deconvolution matches the direct formula across geometries (batch 3, N)", async () => {
  const cases: Partial<Geometry>[] = [
    {},
    { stride: [2, 2] },
    { stride: [2, 3], padding: [1, 1] },
    { stride: [2, 2], padding: [1, 0], postPadding: [0, 2] },
    { kernel: [2, 3], dilation: [2, 1] },
    { stride: [2, 2], outputPadding: [1, 1] },
    { stride: [3, 2], dilation: [1, 2], outputPadding: [2, 1], padding: [1, 1] },
    { c: 4, outputs: 6, groups: 2, stride: [2, 1] },
    { c: 3, outputs: 3, groups: 3, kernel: [1, 1] },
  ];
  let seed = 1;
  for (const over of cases) await runCase(geometry(over), 3, seed++);
});

Deno.test("Deconvolution runs the epilogue: relu and residual pre/post", async () => {
  const r = rng(42);
  const batch = 2;
  const g = geometry({ stride: [2, 2] });
  const x = randomArray(batch * g.c * g.h * g.w, r);
  const wt = randomArray(g.c * g.outputs * 9, r);
  const ref = referenceDeconv(g, batch, x, wt);
  const res = randomArray(ref.y.length, r);
  for (const residual of ["pre", "post"] as const) {
    const net = new Network();
    const input = net.input("x", [N, g.c, g.h, g.w]);
    const skip = net.input("skip", [N, ...ref.dims.slice(1)]);
    const y = net.addDeconvolution([input, skip], {
      outputs: g.outputs,
      kernel: 3,
      stride: 2,
      activation: { type: "relu" },
      residual,
      weights: wt,
    }).output();
    net.markOutput(y, "y");
    const out = await runOnCpu(net, { x, skip: res });
    const want = ref.y.map((v, i) =>
      residual === "pre" ? Math.max(0, v + res[i]) : Math.max(0, v) + res[i]
    );
    assertClose(out.y, want, { rtol: 1e-5, atol: 1e-5 }, `residual ${residual}`);
  }
});

Deno.test("Deconvolution with a concrete batch of 2 and an unbatched input", async () => {
  const g = geometry({ stride: [2, 2], padding: [1, 1], postPadding: [1, 1] });
  const r = rng(7);
  const x = randomArray(2 * g.c * g.h * g.w, r);
  const wt = randomArray(g.c * g.outputs * 9, r);
  const net = new Network();
  const input = net.input("x", [2, g.c, g.h, g.w]);
  const y = input.deconv({ outputs: g.outputs, kernel: 3, stride: 2, padding: 1, weights: wt });
  net.markOutput(y, "y");
  const ref = referenceDeconv(g, 2, x, wt);
  assert.deepEqual(y.dims, ref.dims);
  assertClose((await runOnCpu(net, { x })).y, ref.y, { rtol: 1e-5, atol: 1e-5 });
});

Deno.test("Deconvolution + per-channel Constant add + relu gives the same result once fused", async () => {
  // The builder folds the add and the relu into the layer's epilogue; the result must not change.
  const g = geometry({ stride: [2, 2] });
  const r = rng(8);
  const x = randomArray(2 * g.c * g.h * g.w, r);
  const wt = randomArray(g.c * g.outputs * 9, r);
  const shift = randomArray(g.outputs, r);
  const net = new Network();
  const input = net.input("x", [N, g.c, g.h, g.w]);
  const k = net.addConstant([], { dims: [1, g.outputs, 1, 1], values: shift }).output();
  net.markOutput(
    input.deconv({ outputs: g.outputs, kernel: 3, stride: 2, weights: wt }).add(k).relu(),
    "y",
  );
  const ref = referenceDeconv(g, 2, x, wt, shift);
  const want = ref.y.map((v) => Math.max(0, v));
  assertClose((await runOnCpu(net, { x })).y, want, { rtol: 1e-5, atol: 1e-5 });
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

Deno.test("Deconvolution rejects bad attributes and shapes, naming the layer", () => {
  const net = new Network();
  const x = net.input("x", [N, 4, 5, 5]);
  const w = (n: number) => new Float32Array(n);
  assertKilnError(
    () => net.addDeconvolution(x, { name: "d0", outputs: 2, kernel: 0, weights: w(1) }),
    "d0",
    "INVALID_ATTRIBUTE",
    /kernel/,
  );
  assertKilnError(
    () =>
      net.addDeconvolution(x, {
        name: "d1",
        outputs: 2,
        kernel: 2,
        outputPadding: 1,
        weights: w(32),
      }),
    "d1",
    "SHAPE_MISMATCH",
    /outputPadding/,
  );
  assertKilnError(
    () => net.addDeconvolution(x, { name: "d2", outputs: 3, kernel: 2, groups: 2, weights: w(24) }),
    "d2",
    "SHAPE_MISMATCH",
    /groups/,
  );
  assertKilnError(
    () => net.addDeconvolution(x, { name: "d3", outputs: 2, kernel: 2, weights: w(7) }),
    "d3",
    "INVALID_ARGUMENT",
    /expected 32/,
  );
  assertKilnError(
    () => net.addDeconvolution(x, { name: "d4", outputs: 2, kernel: 1, padding: 3, weights: w(8) }),
    "d4",
    "SHAPE_MISMATCH",
    /empty/,
  );
  const flat = net.input("flat", [N, 4]);
  assertKilnError(
    () => net.addDeconvolution(flat, { name: "d5", outputs: 2, kernel: 1, weights: w(8) }),
    "d5",
    "SHAPE_MISMATCH",
    /rank 4/,
  );
  assertKilnError(
    () =>
      net.addDeconvolution(x, {
        name: "d6",
        outputs: 2,
        kernel: 1,
        residual: "pre",
        weights: w(8),
      }),
    "d6",
    "SHAPE_MISMATCH",
    /residual/,
  );
});
