/** Element types of tensors and weights. */
export type DType = "float32" | "float16" | "int8" | "int32";

export const DTYPES: readonly DType[] = ["float32", "float16", "int8", "int32"];

export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case "float32":
    case "int32":
      return 4;
    case "float16":
      return 2;
    case "int8":
      return 1;
  }
}

/** The host array type that carries a dtype's values (float16 travels as its raw bits). */
export type HostArray = Float32Array | Int32Array | Int8Array | Uint16Array;

export function newHostArray(dtype: DType, length: number): HostArray {
  switch (dtype) {
    case "float32":
      return new Float32Array(length);
    case "int32":
      return new Int32Array(length);
    case "int8":
      return new Int8Array(length);
    case "float16":
      return new Uint16Array(length);
  }
}

export function dtypeOfArray(a: HostArray): DType {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Int32Array) return "int32";
  if (a instanceof Int8Array) return "int8";
  return "float16";
}

// Scratch views for reading a float32's bits (module-private; conversions are synchronous).
const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * The IEEE binary16 bits nearest to `value` rounded to float32 first: round to nearest, ties to
 * even, with subnormals, overflow to ±infinity, signed zeros kept and NaN made a quiet NaN.
 */
export function float32ToFloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  // The half's biased exponent (float32 bias 127, half bias 15).
  const e = exp - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e >= 1) {
    // Normal: drop 13 mantissa bits, rounding to nearest even; a carry into the exponent is
    // the correct next value (up to infinity).
    let h = sign | (e << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) !== 0)) h++;
    return h;
  }
  // Subnormal half (or zero): the value in units of 2^-24 is (1.mant) · 2^(exp - 126).
  const shift = 14 - e;
  if (exp === 0 || shift > 24) return sign;
  const full = mant | 0x800000;
  let m = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && (m & 1) !== 0)) m++;
  return sign | m;
}

/** The value of IEEE binary16 bits (exact: every half is a float32 and a JS number). */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}
