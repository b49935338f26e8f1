/**
 * Convolution on the CPU: im2col per image and group, then one GEMM
 * out[K/g × OH·OW] = W[K/g × (C/g)·kh·kw] · col[(C/g)·kh·kw × OH·OW], then bias and epilogue.
 */
import { gemm } from "./_gemm.ts";
import { type CpuKernel, f32 } from "./_kernel.ts";
import { applyEpilogue, type EpilogueAttrs } from "./_epilogue.ts";

export interface ConvAttrs extends EpilogueAttrs {
  outputs: number;
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number];
  postPadding?: [number, number];
  dilation: [number, number];
  groups: number;
}

/** Unrolls the receptive fields of channels [c0, c0+cg) of one image into `col`. */
export function im2col(
  x: Float32Array,
  xOffset: number,
  c0: number,
  cg: number,
  h: number,
  w: number,
  a: {
    kernel: [number, number];
    stride: [number, number];
    padding: [number, number];
    dilation: [number, number];
  },
  oh: number,
  ow: number,
  col: Float32Array,
): void {
  const [kh, kw] = a.kernel, [sh, sw] = a.stride, [ph, pw] = a.padding, [dh, dw] = a.dilation;
  const plane = oh * ow;
  let row = 0;
  for (let c = 0; c < cg; c++) {
    const xc = xOffset + (c0 + c) * h * w;
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++, row++) {
        const base = row * plane;
        for (let y = 0; y < oh; y++) {
          const iy = y * sh - ph + i * dh;
          const dst = base + y * ow;
          if (iy < 0 || iy >= h) {
            col.fill(0, dst, dst + ow);
            continue;
          }
          const src = xc + iy * w;
          for (let xo = 0; xo < ow; xo++) {
            const ix = xo * sw - pw + j * dw;
            col[dst + xo] = ix >= 0 && ix < w ? x[src + ix] : 0;
          }
        }
      }
    }
  }
}

export const convolution: CpuKernel<ConvAttrs> = ({ attrs, weights, inputs, outputs }) => {
  const x = f32(inputs[0]), y = f32(outputs[0]);
  const [n, c, h, w] = inputs[0].dims;
  const [, k, oh, ow] = outputs[0].dims;
  const g = attrs.groups, cg = c / g, kg = k / g;
  const kk = cg * attrs.kernel[0] * attrs.kernel[1];
  const plane = oh * ow;
  // Either side may be a view inside a wider tensor (plan/views.ts): images lie a stride apart.
  const xStride = inputs[0].batchStride ?? c * h * w, yStride = outputs[0].batchStride ?? k * plane;
  const wt = weights.weights as Float32Array;
  const bias = weights.bias as Float32Array | undefined;
  const residual = attrs.residual ? inputs[inputs.length - 1] : undefined;
  const col = new Float32Array(kk * plane);
  for (let b = 0; b < n; b++) {
    for (let gi = 0; gi < g; gi++) {
      im2col(x, b * xStride, gi * cg, cg, h, w, attrs, oh, ow, col);
      gemm({
        m: kg,
        n: plane,
        k: kk,
        a: wt,
        aOffset: gi * kg * kk,
        lda: kk,
        b: col,
        ldb: plane,
        c: y,
        cOffset: b * yStride + gi * kg * plane,
        ldc: plane,
      });
    }
    const image = y.subarray(b * yStride, b * yStride + k * plane);
    if (bias) {
      for (let o = 0; o < k; o++) {
        const off = o * plane;
        const bv = bias[o];
        for (let i = 0; i < plane; i++) image[off + i] += bv;
      }
    }
    // The residual is dense: image b is its b-th run of k·plane values.
    const r = residual && {
      data: f32(residual).subarray(b * k * plane, (b + 1) * k * plane),
      dims: residual.dims,
    };
    applyEpilogue(attrs, image, r);
  }
};
