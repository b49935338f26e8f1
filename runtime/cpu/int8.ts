/**
 * INT8 Convolution, FullyConnected and MatrixMultiply on the CPU as exact integer arithmetic:
 * activations quantized per tensor, weights per output channel, int32 accumulation, then the
 * fused requantization, bias and activation, the output written in its tensor's format. The
 * rounding rules are spelled out in _quant.ts; the GPU kernels are held to them.
 */
import type { Precision } from "../../dsl/ir/graph.ts";
import { KilnError } from "../../errors.ts";
import { applyActivation } from "./activation.ts";
import { broadcastStrides } from "./_broadcast.ts";
import type { ConvAttrs } from "./convolution.ts";
import type { FcAttrs } from "./fully_connected.ts";
import { type CpuKernelArgs, f32 } from "./_kernel.ts";
import type { MatMulAttrs } from "./matrix_multiply.ts";
import {
  fakeQuantizeArray,
  quantize,
  quantizeArray,
  type QuantizedWeights,
  quantizeRows,
  roundArrayToHalf,
} from "./_quant.ts";

/** A tensor's storage format; `scale` is the INT8 step. */
export interface TensorFormat {
  precision: Precision;
  scale?: number;
}

export interface Int8KernelArgs<A = Record<string, unknown>> extends CpuKernelArgs<A> {
  /** The INT8 step of each input the kernel reads as INT8. */
  inputScales: (number | undefined)[];
  /** The format each output is written in. */
  outputFormats: TensorFormat[];
}

// deno-lint-ignore no-explicit-any
export type Int8Kernel<A = any> = (args: Int8KernelArgs<A>) => void;

/** Quantized weights by their float32 array (the engine's weight views live as long as it). */
const weightCache = new WeakMap<Float32Array, QuantizedWeights>();

/** The weights as `rows` output channels of `cols` values, quantized once per engine. */
export function int8Weights(w: Float32Array, rows: number, cols: number): QuantizedWeights {
  let q = weightCache.get(w);
  if (!q) {
    q = quantizeRows(w, rows, cols);
    weightCache.set(w, q);
  }
  return q;
}

function scaleOf(args: Int8KernelArgs<unknown>, i: number): number {
  const s = args.inputScales[i];
  if (!(s !== undefined && s > 0 && Number.isFinite(s))) {
    throw new KilnError("PLAN_INVALID", `INT8 layer input ${i} has no valid scale (got ${s})`, {
      layer: args.layer,
    });
  }
  return s;
}

function noResidual(args: Int8KernelArgs<{ residual?: unknown }>): void {
  if (args.attrs.residual) {
    throw new KilnError(
      "UNSUPPORTED",
      "INT8 kernels do not take a fused residual; the builder keeps such layers in FP16/FP32",
      { layer: args.layer },
    );
  }
}

/** Activation, then the output's format: INT8 steps, half rounding, or float32 as is. */
function finishOutput(
  args: Int8KernelArgs<{ activation?: ConvAttrs["activation"] }>,
  y: Float32Array,
): void {
  if (args.attrs.activation) applyActivation(args.attrs.activation, y);
  const f = args.outputFormats[0];
  if (f?.precision === "int8") {
    if (!(f.scale !== undefined && f.scale > 0)) {
      throw new KilnError("PLAN_INVALID", "INT8 output without a scale", { layer: args.layer });
    }
    fakeQuantizeArray(y, f.scale);
  } else if (f?.precision === "fp16") {
    roundArrayToHalf(y);
  }
}

/** c[m×n] = a[m×k] (from aOffset) · b[k×n], int8 operands, int32 accumulation (wrapping). */
function igemm(
  a: Int8Array,
  aOffset: number,
  b: Int8Array,
  c: Int32Array,
  m: number,
  n: number,
  k: number,
): void {
  c.fill(0, 0, m * n);
  for (let i = 0; i < m; i++) {
    const co = i * n;
    for (let p = 0; p < k; p++) {
      const av = a[aOffset + i * k + p];
      if (av === 0) continue;
      const bo = p * n;
      for (let j = 0; j < n; j++) c[co + j] += av * b[bo + j];
    }
  }
}

/** im2col over quantized channels [c0, c0+cg) of one image (padding reads q = 0). */
function im2colInt8(
  x: Int8Array,
  c0: number,
  cg: number,
  h: number,
  w: number,
  a: ConvAttrs,
  oh: number,
  ow: number,
  col: Int8Array,
): void {
  const [kh, kw] = a.kernel, [sh, sw] = a.stride, [ph, pw] = a.padding, [dh, dw] = a.dilation;
  const plane = oh * ow;
  let row = 0;
  for (let c = 0; c < cg; c++) {
    const xc = (c0 + c) * h * w;
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

export const convolutionInt8: Int8Kernel<ConvAttrs> = (args) => {
  noResidual(args);
  const { attrs, weights, inputs, outputs } = args;
  const x = f32(inputs[0]), y = f32(outputs[0]);
  const [n, c, h, w] = inputs[0].dims;
  const [, k, oh, ow] = outputs[0].dims;
  const g = attrs.groups, cg = c / g, kg = k / g;
  const kk = cg * attrs.kernel[0] * attrs.kernel[1];
  const plane = oh * ow;
  const sx = scaleOf(args, 0);
  const qw = int8Weights(weights.weights as Float32Array, k, kk);
  const bias = weights.bias as Float32Array | undefined;
  const mult = qw.scales.map((sw) => Math.fround(sx * sw));
  const qx = new Int8Array(c * h * w);
  const col = new Int8Array(kk * plane);
  const acc = new Int32Array(kg * plane);
  for (let b = 0; b < n; b++) {
    quantizeArray(x.subarray(b * c * h * w, (b + 1) * c * h * w), sx, qx);
    for (let gi = 0; gi < g; gi++) {
      im2colInt8(qx, gi * cg, cg, h, w, attrs, oh, ow, col);
      igemm(qw.q, gi * kg * kk, col, acc, kg, plane, kk);
      for (let o = 0; o < kg; o++) {
        const ch = gi * kg + o, m = mult[ch], bv = bias ? bias[ch] : 0;
        const yo = (b * k + ch) * plane;
        for (let i = 0; i < plane; i++) {
          // y is float32: each assignment rounds, as fround(fround(acc)·m) + bias in float32.
          y[yo + i] = Math.fround(acc[o * plane + i]) * m;
          if (bias) y[yo + i] += bv;
        }
      }
    }
  }
  finishOutput(args, y);
};

export const fullyConnectedInt8: Int8Kernel<FcAttrs> = (args) => {
  noResidual(args);
  const { attrs, weights, inputs, outputs } = args;
  const x = f32(inputs[0]), y = f32(outputs[0]);
  let m = 1;
  for (let i = 0; i < attrs.axis; i++) m *= inputs[0].dims[i];
  const v = x.length / m, k = attrs.outputs;
  const sx = scaleOf(args, 0);
  const qw = int8Weights(weights.weights as Float32Array, k, v);
  const bias = weights.bias as Float32Array | undefined;
  const qx = new Int8Array(x.length);
  quantizeArray(x, sx, qx);
  const wq = qw.q;
  for (let o = 0; o < k; o++) {
    const mo = Math.fround(sx * qw.scales[o]), wo = o * v;
    for (let i = 0; i < m; i++) {
      const xo = i * v;
      let acc = 0;
      for (let p = 0; p < v; p++) acc += qx[xo + p] * wq[wo + p];
      y[i * k + o] = Math.fround(acc | 0) * mo;
      if (bias) y[i * k + o] += bias[o];
    }
  }
  finishOutput(args, y);
};

/** Both operands are activations, each quantized with its tensor's step. */
export const matrixMultiplyInt8: Int8Kernel<MatMulAttrs> = (args) => {
  noResidual(args);
  const { attrs, weights, inputs, outputs } = args;
  const [A, B] = inputs;
  const y = f32(outputs[0]);
  const sa = scaleOf(args, 0), sb = scaleOf(args, 1);
  const qa = new Int8Array(A.data.length), qb = new Int8Array(B.data.length);
  quantizeArray(f32(A), sa, qa);
  quantizeArray(f32(B), sb, qb);
  const mult = Math.fround(sa * sb);
  const outDims = outputs[0].dims, rank = outDims.length;
  const m = outDims[rank - 2], n = outDims[rank - 1];
  const aCols = A.dims[A.dims.length - 1], aRows = A.dims[A.dims.length - 2];
  const bCols = B.dims[B.dims.length - 1], bRows = B.dims[B.dims.length - 2];
  const k = attrs.transposeA ? aRows : aCols;
  // Element (i, p) of op(A) and (p, j) of op(B) as offsets inside one stored matrix.
  const [aI, aP] = attrs.transposeA ? [1, aCols] : [aCols, 1];
  const [bP, bJ] = attrs.transposeB ? [1, bCols] : [bCols, 1];
  const lead = outDims.slice(0, -2);
  const aStrides = broadcastStrides(A.dims.slice(0, -2), lead);
  const bStrides = broadcastStrides(B.dims.slice(0, -2), lead);
  const count = lead.reduce((p, d) => p * d, 1);
  const index = new Array<number>(lead.length).fill(0);
  const bias = weights.bias as Float32Array | undefined;
  for (let mat = 0; mat < count; mat++) {
    let aMat = 0, bMat = 0;
    for (let d = 0; d < lead.length; d++) {
      aMat += index[d] * aStrides[d];
      bMat += index[d] * bStrides[d];
    }
    const ao = aMat * aRows * aCols, bo = bMat * bRows * bCols, yo = mat * m * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let p = 0; p < k; p++) acc += qa[ao + i * aI + p * aP] * qb[bo + p * bP + j * bJ];
        y[yo + i * n + j] = Math.fround(acc | 0) * mult;
        if (bias) y[yo + i * n + j] += bias[j];
      }
    }
    for (let d = lead.length - 1; d >= 0 && ++index[d] === lead[d]; d--) index[d] = 0;
  }
  finishOutput(args, y);
};

/** The INT8 kernels by layer kind: what the builder may run in INT8 on the CPU. */
export const CPU_INT8_KERNELS: Record<string, Int8Kernel> = {
  Convolution: convolutionInt8,
  FullyConnected: fullyConnectedInt8,
  MatrixMultiply: matrixMultiplyInt8,
};

/** Quantize-dequantize of one value, for callers that need the INT8 value of a float. */
export function int8Value(x: number, scale: number): number {
  return Math.fround(quantize(x, scale) * scale);
}
