/**
 * The exact arithmetic of reduced precision on the CPU. The GPU kernels are tested against these
 * rules bit for bit (or to one quantization step), so every rounding is spelled out.
 *
 * Storage. A tensor in FP16 or INT8 is carried in float32 memory holding exactly the values the
 * reduced format represents: `half(x)` for FP16, `fround(q · scale)` for INT8 (q an integer in
 * [-127, 127]). Every FP32 kernel can read them unchanged, and an INT8 kernel recovers q exactly
 * with `quantize(x, scale)` (|fround(q·s)/s − q| ≤ 127·2⁻²⁴, far below one half).
 *
 * Rules (float32 operations are IEEE round-to-nearest-even; in CUDA: __fdiv_rn, __fmul_rn,
 * __fadd_rn, never a fused multiply-add, __int2float_rn, cvt.rni):
 *  - half(x): the nearest binary16 (ties to even, subnormals kept, overflow to ±∞), as a float32.
 *  - quantize(x, s) = clamp(rne(fround(x / s)), −127, 127); NaN → 0. Symmetric: −128 is unused.
 *  - weight scales, per output channel k: s_w[k] = fround(max|W[k, ·]| / 127) (1 for an all-zero
 *    channel), q_w = quantize(W, s_w[k]).
 *  - accumulation: int32, acc = Σ q_x · q_w (exact: |acc| < 2³¹ while K < 133,143).
 *  - requantization: m_k = fround(s_x · s_w[k]); y = fround(fround(fround(acc) · m_k) + bias_k);
 *    then the fused activation in float32; then the output format: INT8 → fround(quantize(y,
 *    s_y) · s_y), FP16 → half(y), FP32 → y.
 */
import { float16BitsToFloat32, float32ToFloat16Bits } from "../../dsl/ir/dtype.ts";

export const INT8_MAX = 127;

/** Round half to even (JavaScript's Math.round rounds halves up). */
export function rne(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/** The INT8 step of x with step `scale`: clamp(rne(fround(x / scale)), −127, 127), NaN → 0. */
export function quantize(x: number, scale: number): number {
  const q = rne(Math.fround(x / scale));
  if (q !== q) return 0;
  return q > INT8_MAX ? INT8_MAX : q < -INT8_MAX ? -INT8_MAX : q;
}

/** x as its nearest binary16 value (a float32). */
export function roundToHalf(x: number): number {
  return float16BitsToFloat32(float32ToFloat16Bits(x));
}

/** Rounds every element to half in place. */
export function roundArrayToHalf(a: Float32Array): void {
  for (let i = 0; i < a.length; i++) a[i] = roundToHalf(a[i]);
}

/** Quantizes `x` into `q` (same length). */
export function quantizeArray(x: Float32Array, scale: number, q: Int8Array): void {
  for (let i = 0; i < x.length; i++) q[i] = quantize(x[i], scale);
}

/** Replaces every element by its INT8 value fround(quantize(x, s) · s), in place. */
export function fakeQuantizeArray(a: Float32Array, scale: number): void {
  for (let i = 0; i < a.length; i++) a[i] = quantize(a[i], scale) * scale;
}

/** Per-row symmetric INT8 weights: `rows` rows of `cols` values, one scale per row. */
export interface QuantizedWeights {
  q: Int8Array;
  scales: Float32Array;
}

export function quantizeRows(w: Float32Array, rows: number, cols: number): QuantizedWeights {
  const q = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let j = 0; j < cols; j++) amax = Math.max(amax, Math.abs(w[r * cols + j]));
    const s = amax > 0 ? Math.fround(amax / INT8_MAX) : 1;
    scales[r] = s;
    for (let j = 0; j < cols; j++) q[r * cols + j] = quantize(w[r * cols + j], s);
  }
  return { q, scales };
}
