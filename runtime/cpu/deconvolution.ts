/**
 * Deconvolution (transposed convolution) on the CPU, per image and group:
 *   col[(K/g)·kh·kw × H·W] = W_gᵀ · x_g   (one GEMM; W_g is [C/g × (K/g)·kh·kw])
 * then col2im scatters every column entry to the output pixel it lands on, summing overlaps.
 * This is exactly the backward pass of convolution's im2col + GEMM.
 */
import { gemm } from "./_gemm.ts";
import { type CpuKernel, f32 } from "./_kernel.ts";
import { applyEpilogue, type EpilogueAttrs } from "./_epilogue.ts";

export interface DeconvAttrs extends EpilogueAttrs {
  outputs: number;
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number];
  postPadding?: [number, number];
  dilation: [number, number];
  groups: number;
  outputPadding: [number, number];
}

/**
 * Adds the rows of `col` (one per output channel k of [k0, k0+kg) and kernel tap (i, j), each
 * holding h·w values, one per input pixel) into the output planes of one image. Input pixel
 * (y, x) with tap (i, j) lands on output (y·sh - ph + i·dh, x·sw - pw + j·dw); positions cropped
 * by the padding fall outside [0, oh)×[0, ow) and are dropped.
 */
export function col2im(
  col: Float32Array,
  kg: number,
  h: number,
  w: number,
  a: {
    kernel: [number, number];
    stride: [number, number];
    padding: [number, number];
    dilation: [number, number];
  },
  out: Float32Array,
  outOffset: number,
  oh: number,
  ow: number,
): void {
  const [kh, kw] = a.kernel, [sh, sw] = a.stride, [ph, pw] = a.padding, [dh, dw] = a.dilation;
  const plane = h * w;
  let row = 0;
  for (let k = 0; k < kg; k++) {
    const yk = outOffset + k * oh * ow;
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++, row++) {
        const base = row * plane;
        for (let y = 0; y < h; y++) {
          const oy = y * sh - ph + i * dh;
          if (oy < 0 || oy >= oh) continue;
          const dst = yk + oy * ow;
          const src = base + y * w;
          for (let x = 0; x < w; x++) {
            const ox = x * sw - pw + j * dw;
            if (ox >= 0 && ox < ow) out[dst + ox] += col[src + x];
          }
        }
      }
    }
  }
}

export const deconvolution: CpuKernel<DeconvAttrs> = ({ attrs, weights, inputs, outputs }) => {
  const x = f32(inputs[0]), y = f32(outputs[0]);
  const [n, c, h, w] = inputs[0].dims;
  const [, k, oh, ow] = outputs[0].dims;
  const g = attrs.groups, cg = c / g, kg = k / g;
  const taps = kg * attrs.kernel[0] * attrs.kernel[1];
  const plane = h * w, outPlane = oh * ow;
  const wt = weights.weights as Float32Array;
  const bias = weights.bias as Float32Array | undefined;
  const col = new Float32Array(taps * plane);
  y.fill(0);
  for (let b = 0; b < n; b++) {
    for (let gi = 0; gi < g; gi++) {
      // W_g is stored [cg × taps]; read it transposed (transA) so col = W_gᵀ · x_g.
      gemm({
        m: taps,
        n: plane,
        k: cg,
        a: wt,
        aOffset: gi * cg * taps,
        lda: taps,
        transA: true,
        b: x,
        bOffset: (b * c + gi * cg) * plane,
        ldb: plane,
        c: col,
        ldc: plane,
      });
      col2im(col, kg, h, w, attrs, y, (b * k + gi * kg) * outPlane, oh, ow);
    }
    if (bias) {
      for (let o = 0; o < k; o++) {
        const off = (b * k + o) * outPlane;
        const bv = bias[o];
        for (let i = 0; i < outPlane; i++) y[off + i] += bv;
      }
    }
  }
  applyEpilogue(attrs, y, attrs.residual ? inputs[inputs.length - 1] : undefined);
};
