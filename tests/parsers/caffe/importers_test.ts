/**
 * Each Caffe layer importer, run on the CPU and compared with a direct float64 formula written
 * here (Caffe's own definitions), on random non-zero inputs and weights, with the batch N > 1.
 */
import assert from "node:assert/strict";
import { assertClose, randomArray, rng } from "../../_util.ts";
import { encodeModel, runCaffe } from "./_util.ts";

const TOL = { rtol: 1e-4, atol: 1e-5 };

/** A prototxt with one input "data" of these dims followed by `layers`. */
const net = (dims: number[], layers: string) =>
  `input: "data"\ninput_shape { ${dims.map((d) => `dim: ${d}`).join(" ")} }\n${layers}`;

const vol = (d: number[]) => d.reduce((a, b) => a * b, 1);

Deno.test("BatchNorm + Scale fold into one Scale layer that matches the formula", async () => {
  const r = rng(1);
  const dims = [3, 4, 5, 6], c = 4;
  const x = randomArray(vol(dims), r, -2, 2);
  const mean = randomArray(c, r), variance = randomArray(c, r, 0.2, 2);
  const gamma = randomArray(c, r, 0.5, 1.5), beta = randomArray(c, r);
  const factor = 2.5, eps = 1e-3;
  const model = encodeModel([
    {
      name: "bn",
      blobs: [{ dims: [c], data: mean }, { dims: [c], data: variance }, {
        dims: [1],
        data: [factor],
      }],
    },
    { name: "sc", blobs: [{ dims: [c], data: gamma }, { dims: [c], data: beta }] },
  ]);
  const { outs, parsed } = await runCaffe(
    net(
      dims,
      `
      layer { name: "bn" type: "BatchNorm" bottom: "data" top: "y" batch_norm_param { eps: 0.001 } }
      layer { name: "sc" type: "Scale" bottom: "y" top: "y" scale_param { bias_term: true } }`,
    ),
    { model, inputs: { data: x }, outputs: ["y"] },
  );
  const layers = parsed.network.layers;
  assert.equal(layers.length, 1);
  assert.equal(layers[0].kind, "Scale");
  assert.equal(layers[0].name, "bn + sc");
  assert.deepEqual(layers[0].sources, ["bn", "sc"]);
  assert.ok(parsed.diagnostics.some((d) => /BatchNorm "bn" and Scale "sc" folded/.test(d.message)));
  const want = new Float64Array(x.length);
  const hw = 30;
  for (let i = 0; i < x.length; i++) {
    const ch = Math.floor(i / hw) % c;
    const norm = (x[i] - mean[ch] / factor) / Math.sqrt(variance[ch] / factor + eps);
    want[i] = gamma[ch] * norm + beta[ch];
  }
  assertClose(outs.y as Float32Array, want, TOL, "bn+scale");
});

Deno.test("BatchNorm alone, or read by two layers, is not folded and still matches", async () => {
  const r = rng(2);
  const dims = [2, 3, 2, 2], c = 3;
  const x = randomArray(vol(dims), r);
  const mean = randomArray(c, r), variance = randomArray(c, r, 0.5, 1.5);
  const gamma = randomArray(c, r);
  const model = encodeModel([
    {
      name: "bn",
      blobs: [{ dims: [c], data: mean }, { dims: [c], data: variance }, { dims: [1], data: [0] }],
    },
    { name: "sc", blobs: [{ dims: [c], data: gamma }] },
  ]);
  // Factor 0 means a scale of 0: mean 0 and variance 0 (Caffe's rule).
  const { outs, parsed } = await runCaffe(
    net(
      dims,
      `
      layer { name: "bn" type: "BatchNorm" bottom: "data" top: "n" }
      layer { name: "sc" type: "Scale" bottom: "n" top: "s" }
      layer { name: "other" type: "ReLU" bottom: "n" top: "r" }`,
    ),
    { model, inputs: { data: x }, outputs: ["s", "r"] },
  );
  assert.deepEqual(parsed.network.layers.map((l) => l.name), ["bn", "sc", "other"]);
  const eps = 1e-5;
  const n = Array.from(x, (v) => v / Math.sqrt(eps));
  assertClose(outs.r as Float32Array, n.map((v) => Math.max(v, 0)), TOL, "relu(bn)");
  assertClose(
    outs.s as Float32Array,
    n.map((v, i) => v * gamma[Math.floor(i / 4) % c]),
    TOL,
    "scale",
  );
});

Deno.test("Eltwise SUM with coefficients, PROD and MAX over three bottoms", async () => {
  const r = rng(3);
  const dims = [2, 2, 3, 3];
  const x = randomArray(vol(dims), r);
  const layers = `
    layer { name: "a" type: "TanH" bottom: "data" top: "a" }
    layer { name: "b" type: "Sigmoid" bottom: "data" top: "b" }
    layer { name: "sum" type: "Eltwise" bottom: "data" bottom: "a" bottom: "b" top: "sum"
            eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 3 } }
    layer { name: "plain" type: "Eltwise" bottom: "a" bottom: "b" top: "plain" }
    layer { name: "prod" type: "Eltwise" bottom: "data" bottom: "a" bottom: "b" top: "prod"
            eltwise_param { operation: PROD } }
    layer { name: "max" type: "Eltwise" bottom: "data" bottom: "a" bottom: "b" top: "max"
            eltwise_param { operation: MAX } }`;
  const { outs } = await runCaffe(net(dims, layers), {
    inputs: { data: x },
    outputs: ["sum", "plain", "prod", "max"],
  });
  const a = Array.from(x, Math.tanh), b = Array.from(x, (v) => 1 / (1 + Math.exp(-v)));
  assertClose(
    outs.sum as Float32Array,
    Array.from(x, (v, i) => 0.5 * v - 2 * a[i] + 3 * b[i]),
    TOL,
    "sum",
  );
  assertClose(outs.plain as Float32Array, a.map((v, i) => v + b[i]), TOL, "plain sum");
  assertClose(outs.prod as Float32Array, Array.from(x, (v, i) => v * a[i] * b[i]), TOL, "prod");
  assertClose(
    outs.max as Float32Array,
    Array.from(x, (v, i) => Math.max(v, a[i], b[i])),
    TOL,
    "max",
  );
});

Deno.test("PReLU per channel and shared, ReLU with a slope, ELU, AbsVal, BNLL, Power", async () => {
  const r = rng(4);
  const dims = [3, 3, 2, 2];
  const x = randomArray(vol(dims), r, -3, 3);
  const slopes = randomArray(3, r);
  const model = encodeModel([
    { name: "prelu", blobs: [{ dims: [3], data: slopes }] },
    { name: "prelu1", blobs: [{ dims: [1], data: [0.3] }] },
  ]);
  const { outs } = await runCaffe(
    net(
      dims,
      `
      layer { name: "prelu" type: "PReLU" bottom: "data" top: "p" }
      layer { name: "prelu1" type: "PReLU" bottom: "data" top: "p1" prelu_param { channel_shared: true } }
      layer { name: "leaky" type: "ReLU" bottom: "data" top: "l" relu_param { negative_slope: 0.1 } }
      layer { name: "elu" type: "ELU" bottom: "data" top: "e" elu_param { alpha: 0.7 } }
      layer { name: "abs" type: "AbsVal" bottom: "data" top: "abs" }
      layer { name: "bnll" type: "BNLL" bottom: "data" top: "bnll" }
      layer { name: "pow" type: "Power" bottom: "data" top: "pow"
              power_param { power: 2 scale: 0.5 shift: 1 } }`,
    ),
    { model, inputs: { data: x }, outputs: ["p", "p1", "l", "e", "abs", "bnll", "pow"] },
  );
  const ch = (i: number) => Math.floor(i / 4) % 3;
  const xs = Array.from(x);
  assertClose(
    outs.p as Float32Array,
    xs.map((v, i) => (v > 0 ? v : slopes[ch(i)] * v)),
    TOL,
    "prelu",
  );
  assertClose(outs.p1 as Float32Array, xs.map((v) => (v > 0 ? v : 0.3 * v)), TOL, "prelu shared");
  assertClose(outs.l as Float32Array, xs.map((v) => (v > 0 ? v : 0.1 * v)), TOL, "leaky relu");
  assertClose(
    outs.e as Float32Array,
    xs.map((v) => (v > 0 ? v : 0.7 * (Math.exp(v) - 1))),
    TOL,
    "elu",
  );
  assertClose(outs.abs as Float32Array, xs.map(Math.abs), TOL, "abs");
  assertClose(outs.bnll as Float32Array, xs.map((v) => Math.log1p(Math.exp(v))), TOL, "bnll");
  assertClose(outs.pow as Float32Array, xs.map((v) => (1 + 0.5 * v) ** 2), TOL, "power");
});

Deno.test("Exp and Log with a base, scale and shift", async () => {
  const r = rng(5);
  const dims = [2, 5];
  const x = randomArray(vol(dims), r, 0.1, 2);
  const { outs } = await runCaffe(
    net(
      dims,
      `
      layer { name: "exp" type: "Exp" bottom: "data" top: "exp" exp_param { base: 2 scale: 0.5 shift: 1 } }
      layer { name: "exp_e" type: "Exp" bottom: "data" top: "exp_e" }
      layer { name: "log" type: "Log" bottom: "data" top: "log" log_param { base: 10 scale: 3 shift: 0.5 } }`,
    ),
    { inputs: { data: x }, outputs: ["exp", "exp_e", "log"] },
  );
  const xs = Array.from(x);
  assertClose(outs.exp as Float32Array, xs.map((v) => 2 ** (1 + 0.5 * v)), TOL, "exp base 2");
  assertClose(outs.exp_e as Float32Array, xs.map(Math.exp), TOL, "exp");
  assertClose(outs.log as Float32Array, xs.map((v) => Math.log10(0.5 + 3 * v)), TOL, "log base 10");
});

/** Caffe's convolution (float64): weights [O, C/g, kh, kw]. */
function refConv(
  x: Float32Array,
  [n, c, h, w]: number[],
  wt: Float32Array,
  bias: Float32Array | undefined,
  o: number,
  k: number[],
  s: number[],
  p: number[],
  d: number[],
  g: number,
): { y: Float64Array; dims: number[] } {
  const oh = Math.floor((h + 2 * p[0] - (d[0] * (k[0] - 1) + 1)) / s[0]) + 1;
  const ow = Math.floor((w + 2 * p[1] - (d[1] * (k[1] - 1) + 1)) / s[1]) + 1;
  const y = new Float64Array(n * o * oh * ow);
  const cg = c / g, og = o / g;
  for (let b = 0; b < n; b++) {
    for (let oc = 0; oc < o; oc++) {
      const grp = Math.floor(oc / og);
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          let acc = bias ? bias[oc] : 0;
          for (let ic = 0; ic < cg; ic++) {
            for (let ky = 0; ky < k[0]; ky++) {
              for (let kx = 0; kx < k[1]; kx++) {
                const iy = oy * s[0] - p[0] + ky * d[0], ix = ox * s[1] - p[1] + kx * d[1];
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                acc += x[((b * c + grp * cg + ic) * h + iy) * w + ix] *
                  wt[((oc * cg + ic) * k[0] + ky) * k[1] + kx];
              }
            }
          }
          y[((b * o + oc) * oh + oy) * ow + ox] = acc;
        }
      }
    }
  }
  return { y, dims: [n, o, oh, ow] };
}

Deno.test("Convolution with groups, dilation, _h/_w settings and no bias", async () => {
  const r = rng(6);
  const dims = [2, 4, 7, 8];
  const x = randomArray(vol(dims), r);
  const wt = randomArray(6 * 2 * 3 * 2, r);
  const w2 = randomArray(6 * 4 * 3 * 3, r), b2 = randomArray(6, r);
  const model = encodeModel([
    { name: "conv", blobs: [{ dims: [6, 2, 3, 2], data: wt }] },
    { name: "conv2", blobs: [{ dims: [6, 4, 3, 3], data: w2 }, { dims: [6], data: b2 }] },
  ]);
  const { outs, parsed } = await runCaffe(
    net(
      dims,
      `
      layer { name: "conv" type: "Convolution" bottom: "data" top: "y"
        convolution_param { num_output: 6 group: 2 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1
                            pad_h: 1 pad_w: 2 dilation: 2 bias_term: false } }
      layer { name: "conv2" type: "Convolution" bottom: "data" top: "z"
        convolution_param { num_output: 6 kernel_size: 3 stride: 1 stride: 2 pad: 1 } }`,
    ),
    { model, inputs: { data: x }, outputs: ["y", "z"] },
  );
  const ref = refConv(x, dims, wt, undefined, 6, [3, 2], [2, 1], [1, 2], [2, 2], 2);
  assert.deepEqual(parsed.blobs.get("y")!.dims, ["N", ...ref.dims.slice(1)]);
  assertClose(outs.y as Float32Array, ref.y, TOL, "grouped dilated conv");
  const ref2 = refConv(x, dims, w2, b2, 6, [3, 3], [1, 2], [1, 1], [1, 1], 1);
  assert.deepEqual(parsed.blobs.get("z")!.dims, ["N", ...ref2.dims.slice(1)]);
  assertClose(outs.z as Float32Array, ref2.y, TOL, "conv with per-dim strides");
});

Deno.test("Deconvolution with groups and stride matches the scatter formula", async () => {
  const r = rng(7);
  const [n, c, h, w] = [2, 4, 3, 4], o = 6, g = 2, k = 3, s = 2, p = 1;
  const x = randomArray(n * c * h * w, r);
  const wt = randomArray(c * (o / g) * k * k, r), bias = randomArray(o, r);
  const model = encodeModel([
    { name: "up", blobs: [{ dims: [c, o / g, k, k], data: wt }, { dims: [o], data: bias }] },
  ]);
  const { outs, parsed } = await runCaffe(
    net(
      [n, c, h, w],
      `layer { name: "up" type: "Deconvolution" bottom: "data" top: "y"
      convolution_param { num_output: 6 group: 2 kernel_size: 3 stride: 2 pad: 1 } }`,
    ),
    { model, inputs: { data: x }, outputs: ["y"] },
  );
  const oh = (h - 1) * s - 2 * p + k, ow = (w - 1) * s - 2 * p + k;
  assert.deepEqual(parsed.blobs.get("y")!.dims, ["N", o, oh, ow]);
  const y = new Float64Array(n * o * oh * ow);
  const cg = c / g, og = o / g;
  for (let b = 0; b < n; b++) {
    for (let oc = 0; oc < o; oc++) {
      y.fill(bias[oc], (b * o + oc) * oh * ow, (b * o + oc + 1) * oh * ow);
    }
    for (let ic = 0; ic < c; ic++) {
      const grp = Math.floor(ic / cg);
      for (let iy = 0; iy < h; iy++) {
        for (let ix = 0; ix < w; ix++) {
          for (let j = 0; j < og; j++) {
            for (let ky = 0; ky < k; ky++) {
              for (let kx = 0; kx < k; kx++) {
                const oy = iy * s - p + ky, ox = ix * s - p + kx;
                if (oy < 0 || oy >= oh || ox < 0 || ox >= ow) continue;
                y[((b * o + grp * og + j) * oh + oy) * ow + ox] +=
                  x[((b * c + ic) * h + iy) * w + ix] *
                  wt[((ic * og + j) * k + ky) * k + kx];
              }
            }
          }
        }
      }
    }
  }
  assertClose(outs.y as Float32Array, y, TOL, "deconvolution");
});

Deno.test("InnerProduct with transpose and axis", async () => {
  const r = rng(8);
  const dims = [2, 3, 4];
  const x = randomArray(vol(dims), r);
  const wt = randomArray(12 * 5, r), bias = randomArray(5, r);
  const w2 = randomArray(4 * 2, r);
  const model = encodeModel([
    { name: "ip", blobs: [{ dims: [12, 5], data: wt }, { dims: [5], data: bias }] },
    { name: "ip2", blobs: [{ dims: [1, 1, 2, 4], data: w2, legacyShape: true }] },
  ]);
  const { outs, parsed } = await runCaffe(
    net(
      dims,
      `
      layer { name: "ip" type: "InnerProduct" bottom: "data" top: "y"
              inner_product_param { num_output: 5 transpose: true } }
      layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "z"
              inner_product_param { num_output: 2 axis: -1 bias_term: false } }`,
    ),
    { model, inputs: { data: x }, outputs: ["y", "z"] },
  );
  assert.deepEqual(parsed.blobs.get("z")!.dims, ["N", 3, 2]);
  const y = new Float64Array(2 * 5), z = new Float64Array(2 * 3 * 2);
  for (let b = 0; b < 2; b++) {
    for (let o = 0; o < 5; o++) {
      let acc = bias[o];
      for (let k = 0; k < 12; k++) acc += x[b * 12 + k] * wt[k * 5 + o]; // stored [K, O]
      y[b * 5 + o] = acc;
    }
    for (let row = 0; row < 3; row++) {
      for (let o = 0; o < 2; o++) {
        let acc = 0;
        for (let k = 0; k < 4; k++) acc += x[(b * 3 + row) * 4 + k] * w2[o * 4 + k];
        z[(b * 3 + row) * 2 + o] = acc;
      }
    }
  }
  assertClose(outs.y as Float32Array, y, TOL, "transposed inner product");
  assertClose(outs.z as Float32Array, z, TOL, "inner product over the last axis");
});

/** Caffe's pooling_layer.cpp forward pass (float64), including its output size rule. */
function refPool(
  x: Float32Array,
  [n, c, h, w]: number[],
  ave: boolean,
  k: number,
  s: number,
  p: number,
): { y: Float64Array; dims: number[] } {
  const size = (v: number) => {
    let o = Math.ceil((v + 2 * p - k) / s) + 1;
    if (p > 0 && (o - 1) * s >= v + p) o--;
    return o;
  };
  const ph = size(h), pw = size(w);
  const y = new Float64Array(n * c * ph * pw);
  for (let nc = 0; nc < n * c; nc++) {
    for (let oy = 0; oy < ph; oy++) {
      for (let ox = 0; ox < pw; ox++) {
        let hs = oy * s - p, ws = ox * s - p;
        let he = Math.min(hs + k, h + p), we = Math.min(ws + k, w + p);
        const poolSize = (he - hs) * (we - ws);
        hs = Math.max(hs, 0), ws = Math.max(ws, 0), he = Math.min(he, h), we = Math.min(we, w);
        let acc = ave ? 0 : -Infinity;
        for (let iy = hs; iy < he; iy++) {
          for (let ix = ws; ix < we; ix++) {
            const v = x[(nc * h + iy) * w + ix];
            acc = ave ? acc + v : Math.max(acc, v);
          }
        }
        y[(nc * ph + oy) * pw + ox] = ave ? acc / poolSize : acc;
      }
    }
  }
  return { y, dims: [n, c, ph, pw] };
}

Deno.test("Pooling follows Caffe: ceil sizes, padding counted by AVE, global pooling", async () => {
  const r = rng(9);
  const dims = [2, 3, 8, 7];
  const x = randomArray(vol(dims), r);
  const { outs, parsed } = await runCaffe(
    net(
      dims,
      `
      layer { name: "ave" type: "Pooling" bottom: "data" top: "ave"
              pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
      layer { name: "max" type: "Pooling" bottom: "data" top: "max"
              pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
      layer { name: "max_pad" type: "Pooling" bottom: "data" top: "max_pad"
              pooling_param { kernel_size: 2 stride: 3 pad: 1 } }
      layer { name: "gap" type: "Pooling" bottom: "data" top: "gap"
              pooling_param { pool: AVE global_pooling: true } }
      layer { name: "floor" type: "Pooling" bottom: "data" top: "floor"
              pooling_param { kernel_size: 3 stride: 2 round_mode: FLOOR } }`,
    ),
    { inputs: { data: x }, outputs: ["ave", "max", "max_pad", "gap", "floor"] },
  );
  for (
    const [blob, ave, k, s, p] of [["ave", true, 3, 2, 1], ["max", false, 3, 2, 0], [
      "max_pad",
      false,
      2,
      3,
      1,
    ]] as const
  ) {
    const ref = refPool(x, dims, ave, k, s, p);
    assert.deepEqual(parsed.blobs.get(blob)!.dims, ["N", ...ref.dims.slice(1)], blob);
    assertClose(outs[blob] as Float32Array, ref.y, TOL, blob);
  }
  const gap = Array.from(
    { length: 6 },
    (_, i) => x.slice(i * 56, i * 56 + 56).reduce((a, b) => a + b, 0) / 56,
  );
  assertClose(outs.gap as Float32Array, gap, TOL, "global average");
  assert.deepEqual(parsed.blobs.get("floor")!.dims, ["N", 3, 3, 3]);
});

Deno.test("LRN across channels matches Caffe's formula", async () => {
  const r = rng(10);
  const dims = [2, 7, 3, 2];
  const x = randomArray(vol(dims), r, -2, 2);
  const { outs } = await runCaffe(
    net(
      dims,
      `layer { name: "norm" type: "LRN" bottom: "data" top: "y"
      lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } }`,
    ),
    { inputs: { data: x }, outputs: ["y"] },
  );
  const [, c, h, w] = dims;
  const y = Array.from(x, (v, i) => {
    const ch = Math.floor(i / (h * w)) % c;
    let sum = 0;
    for (let j = Math.max(0, ch - 1); j <= Math.min(c - 1, ch + 1); j++) {
      sum += x[i + (j - ch) * h * w] ** 2;
    }
    return v / (2 + (0.5 / 3) * sum) ** 0.75;
  });
  assertClose(outs.y as Float32Array, y, TOL, "lrn");
});

Deno.test("Concat, Softmax, Flatten and Reshape route blobs as Caffe does", async () => {
  const r = rng(11);
  const dims = [2, 3, 2, 2];
  const x = randomArray(vol(dims), r);
  const { outs, parsed } = await runCaffe(
    net(
      dims,
      `
      layer { name: "t" type: "TanH" bottom: "data" top: "t" }
      layer { name: "cat" type: "Concat" bottom: "data" bottom: "t" top: "cat" }
      layer { name: "cat3" type: "Concat" bottom: "data" bottom: "t" top: "cat3" concat_param { axis: -1 } }
      layer { name: "catd" type: "Concat" bottom: "t" bottom: "data" top: "catd" concat_param { concat_dim: 2 } }
      layer { name: "flat" type: "Flatten" bottom: "data" top: "flat" }
      layer { name: "sm" type: "Softmax" bottom: "flat" top: "sm" }
      layer { name: "rs" type: "Reshape" bottom: "data" top: "rs" reshape_param { shape { dim: 0 dim: -1 dim: 3 } } }
      layer { name: "rs2" type: "Reshape" bottom: "data" top: "rs2"
              reshape_param { shape { dim: 2 dim: 2 } axis: 2 num_axes: 2 } }
      layer { name: "smc" type: "Softmax" bottom: "data" top: "smc" softmax_param { axis: 1 } }`,
    ),
    { inputs: { data: x }, outputs: ["cat", "cat3", "catd", "flat", "sm", "rs", "smc"] },
  );
  const d = (b: string) => parsed.blobs.get(b)!.dims;
  assert.deepEqual(d("cat"), ["N", 6, 2, 2]);
  assert.deepEqual(d("cat3"), ["N", 3, 2, 4]);
  assert.deepEqual(d("catd"), ["N", 3, 4, 2]);
  assert.deepEqual(d("flat"), ["N", 12]);
  assert.deepEqual(d("rs"), ["N", 4, 3]);
  assert.deepEqual(d("rs2"), ["N", 3, 2, 2]);
  const t = Array.from(x, Math.tanh);
  const cat: number[] = [];
  for (let b = 0; b < 2; b++) {
    cat.push(...x.slice(b * 12, b * 12 + 12), ...t.slice(b * 12, b * 12 + 12));
  }
  assertClose(outs.cat as Float32Array, cat, TOL, "concat");
  assertClose(outs.flat as Float32Array, x, TOL, "flatten");
  assertClose(outs.rs as Float32Array, x, TOL, "reshape");
  const sm: number[] = [];
  for (let b = 0; b < 2; b++) {
    const row = Array.from(x.slice(b * 12, b * 12 + 12));
    const m = Math.max(...row),
      e = row.map((v) => Math.exp(v - m)),
      s = e.reduce((a, v) => a + v, 0);
    sm.push(...e.map((v) => v / s));
  }
  assertClose(outs.sm as Float32Array, sm, TOL, "softmax");
  const smc = Array.from(x, (_v, i) => {
    const b = Math.floor(i / 12), pos = i % 4;
    const vals = [0, 1, 2].map((ch) => x[b * 12 + ch * 4 + pos]);
    const m = Math.max(...vals), s = vals.reduce((a, v) => a + Math.exp(v - m), 0);
    return Math.exp(x[i] - m) / s;
  });
  assertClose(outs.smc as Float32Array, smc, TOL, "softmax over channels");
});

Deno.test("Scale over one axis, no axes, every axis and by a second bottom; Bias", async () => {
  const r = rng(12);
  const dims = [2, 3, 4, 2];
  const x = randomArray(vol(dims), r);
  const g2 = randomArray(4, r), g0 = [1.5], gAll = randomArray(24, r), b2 = randomArray(4, r);
  const bias = randomArray(3, r);
  const model = encodeModel([
    { name: "s_axis2", blobs: [{ dims: [4], data: g2 }, { dims: [4], data: b2 }] },
    { name: "s_uniform", blobs: [{ dims: [], data: g0 }] },
    { name: "s_all", blobs: [{ dims: [3, 4, 2], data: gAll }] },
    { name: "bias", blobs: [{ dims: [3], data: bias }] },
  ]);
  const { outs } = await runCaffe(
    net(
      dims,
      `
      layer { name: "s_axis2" type: "Scale" bottom: "data" top: "a" scale_param { axis: 2 bias_term: true } }
      layer { name: "s_uniform" type: "Scale" bottom: "data" top: "u" scale_param { num_axes: 0 } }
      layer { name: "s_all" type: "Scale" bottom: "data" top: "all" scale_param { num_axes: -1 } }
      layer { name: "bias" type: "Bias" bottom: "data" top: "b" }
      layer { name: "gap" type: "Pooling" bottom: "data" top: "gap" pooling_param { pool: AVE global_pooling: true } }
      layer { name: "flat" type: "Flatten" bottom: "gap" top: "g" }
      layer { name: "s_blob" type: "Scale" bottom: "data" bottom: "g" top: "sb" scale_param { axis: 0 } }`,
    ),
    { model, inputs: { data: x }, outputs: ["a", "u", "all", "b", "sb"] },
  );
  const xs = Array.from(x);
  assertClose(
    outs.a as Float32Array,
    xs.map((v, i) => v * g2[Math.floor(i / 2) % 4] + b2[Math.floor(i / 2) % 4]),
    TOL,
    "axis 2",
  );
  assertClose(outs.u as Float32Array, xs.map((v) => v * 1.5), TOL, "uniform");
  assertClose(outs.all as Float32Array, xs.map((v, i) => v * gAll[i % 24]), TOL, "all axes");
  assertClose(
    outs.b as Float32Array,
    xs.map((v, i) => v + bias[Math.floor(i / 8) % 3]),
    TOL,
    "bias",
  );
  const gap = Array.from(
    { length: 6 },
    (_, k) => xs.slice(k * 8, k * 8 + 8).reduce((a, b) => a + b, 0) / 8,
  );
  assertClose(
    outs.sb as Float32Array,
    xs.map((v, i) => v * gap[Math.floor(i / 8)]),
    TOL,
    "scale by blob",
  );
});

Deno.test("Dropout and Split add no layers; in-place blobs map to their last write", async () => {
  const r = rng(13);
  const dims = [2, 4];
  const x = randomArray(vol(dims), r, -1, 1);
  const { outs, parsed } = await runCaffe(
    net(
      dims,
      `
      layer { name: "split" type: "Split" bottom: "data" top: "s1" top: "s2" }
      layer { name: "relu" type: "ReLU" bottom: "s1" top: "s1" }
      layer { name: "drop" type: "Dropout" bottom: "s1" top: "s1" dropout_param { dropout_ratio: 0.3 } }
      layer { name: "neg" type: "Power" bottom: "s2" top: "s2" power_param { scale: -1 } }
      layer { name: "relu2" type: "ReLU" bottom: "s2" top: "s2" }
      layer { name: "sum" type: "Eltwise" bottom: "s1" bottom: "s2" top: "sum" }`,
    ),
    { inputs: { data: x }, outputs: ["sum", "s1", "s2"] },
  );
  assert.deepEqual(parsed.network.layers.map((l) => l.kind), [
    "Activation",
    "Scale",
    "Activation",
    "ElementWise",
  ]);
  // s1 is relu's output (Dropout only aliases it); s2 is relu2's; the tensors carry the blob names.
  assert.equal(parsed.blobs.get("s1")!.producer!.name, "relu");
  assert.equal(parsed.blobs.get("s2")!.producer!.name, "relu2");
  assert.equal(parsed.blobs.get("s2")!.name, "s2");
  assert.equal(parsed.blobs.get("data")!.name, "data");
  assertClose(outs.s1 as Float32Array, Array.from(x, (v) => Math.max(v, 0)), TOL, "s1");
  assertClose(outs.s2 as Float32Array, Array.from(x, (v) => Math.max(-v, 0)), TOL, "s2");
  assertClose(outs.sum as Float32Array, Array.from(x, Math.abs), TOL, "relu(x) + relu(-x)");
});

Deno.test("the first input dim becomes N: any batch up to maxBatchSize runs", async () => {
  const r = rng(14);
  const x3 = randomArray(3 * 5, r);
  const deploy =
    `layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 10 dim: 5 } } }
    layer { name: "sig" type: "Sigmoid" bottom: "data" top: "y" }`;
  for (const batch of [1, 3]) {
    const x = x3.slice(0, batch * 5);
    const { outs, parsed } = await runCaffe(deploy, { inputs: { data: x }, outputs: ["y"] });
    assert.deepEqual(parsed.network.inputs[0].dims, ["N", 5]);
    assertClose(
      outs.y as Float32Array,
      Array.from(x, (v) => 1 / (1 + Math.exp(-v))),
      TOL,
      `batch ${batch}`,
    );
  }
});
