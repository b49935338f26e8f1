import assert from "node:assert/strict";
import {
  bytesPerElement,
  dtypeOfArray,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  newHostArray,
} from "../../../dsl/ir/dtype.ts";
import { rng } from "../../_util.ts";

const isNaNHalf = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;

/** Hand-checked binary16 encodings (sign | 5-bit exponent, bias 15 | 10-bit fraction). */
const HAND: [number, number][] = [
  [0, 0x0000],
  [-0, 0x8000],
  [1, 0x3c00],
  [-2, 0xc000],
  [0.5, 0x3800],
  [1 + 2 ** -10, 0x3c01], // the next half after 1
  [65504, 0x7bff], // the largest finite half
  [2 ** -14, 0x0400], // the smallest normal
  [2 ** -24, 0x0001], // the smallest subnormal
  [2 ** -14 - 2 ** -24, 0x03ff], // the largest subnormal
  [Infinity, 0x7c00],
  [-Infinity, 0xfc00],
  [0.333251953125, 0x3555], // 1/3 rounded to half
  [-1.5, 0xbe00],
  [1024, 0x6400],
];

/** float32 inputs whose half is reached by rounding (the float32 value, the expected bits). */
const ROUNDED: [number, number][] = [
  [0.1, 0x2e66], // 0.0999755859375 is nearest
  [1 / 3, 0x3555],
  [65519, 0x7bff], // below the midpoint to 65536: stays finite
  [65520, 0x7c00], // the midpoint: ties to even (0x7bff is odd) → infinity
  [1e6, 0x7c00],
  [-1e6, 0xfc00],
  [2 ** -25, 0x0000], // half of the smallest subnormal: ties to even → zero
  [-(2 ** -25), 0x8000],
  [2 ** -25 * 1.5, 0x0001],
  [3 * 2 ** -25, 0x0002], // 1.5 subnormal units: ties to even → 2
  [5 * 2 ** -25, 0x0002], // 2.5 units → 2
  [1 + 2 ** -11, 0x3c00], // midpoint between 1 and the next half: to even (1)
  [1 + 3 * 2 ** -11, 0x3c02], // midpoint between 0x3c01 and 0x3c02: to even
  [1e-10, 0x0000],
  [1.401298464324817e-45, 0x0000], // float32 subnormal
];

Deno.test("float32ToFloat16Bits matches hand-checked encodings", () => {
  for (const [v, bits] of [...HAND, ...ROUNDED]) {
    const got = float32ToFloat16Bits(v);
    assert.equal(got, bits, `${v} → 0x${got.toString(16)}, expected 0x${bits.toString(16)}`);
  }
  assert.ok(isNaNHalf(float32ToFloat16Bits(NaN)));
});

Deno.test("float16BitsToFloat32 matches hand-checked values", () => {
  for (const [v, bits] of HAND) {
    assert.ok(Object.is(float16BitsToFloat32(bits), v), `0x${bits.toString(16)} → ${v}`);
  }
  assert.ok(Number.isNaN(float16BitsToFloat32(0x7e00)));
  assert.ok(Number.isNaN(float16BitsToFloat32(0xfc01)));
});

Deno.test("float16 round trip is exact for all 65536 bit patterns", () => {
  for (let h = 0; h < 65536; h++) {
    const v = float16BitsToFloat32(h);
    // Every half is exactly a float32.
    assert.equal(Math.fround(v), v);
    const back = float32ToFloat16Bits(v);
    if (isNaNHalf(h)) {
      // JS numbers carry no NaN payload: any NaN comes back as a NaN.
      assert.ok(Number.isNaN(v) && isNaNHalf(back), `0x${h.toString(16)}`);
    } else {
      assert.equal(back, h, `0x${h.toString(16)} → ${v} → 0x${back.toString(16)}`);
    }
  }
});

Deno.test("float16 decoding agrees with V8's Float16Array for every bit pattern", () => {
  const bits = new Uint16Array(65536);
  for (let h = 0; h < 65536; h++) bits[h] = h;
  const native = new Float16Array(bits.buffer);
  for (let h = 0; h < 65536; h++) {
    const v = float16BitsToFloat32(h);
    if (Number.isNaN(native[h])) assert.ok(Number.isNaN(v));
    else assert.ok(Object.is(v, native[h]), `0x${h.toString(16)}: ${v} vs ${native[h]}`);
  }
});

Deno.test("float32ToFloat16Bits rounds to nearest even at every midpoint between halves", () => {
  // Walk all positive finite halves: the midpoint to the next one (exactly a float32) rounds to
  // the one with the even fraction; one float32 step either side rounds to the nearer one.
  const next = (f: number, dir: 1 | -1) => {
    const a = new Float32Array([f]);
    const u = new Uint32Array(a.buffer);
    u[0] += dir;
    return a[0];
  };
  for (let h = 0; h < 0x7bff; h++) {
    const lo = float16BitsToFloat32(h), hi = float16BitsToFloat32(h + 1);
    const mid = (lo + hi) / 2;
    assert.equal(Math.fround(mid), mid);
    const even = h % 2 === 0 ? h : h + 1;
    assert.equal(float32ToFloat16Bits(mid), even, `midpoint of 0x${h.toString(16)}`);
    assert.equal(float32ToFloat16Bits(next(mid, -1)), h);
    assert.equal(float32ToFloat16Bits(next(mid, 1)), h + 1);
    assert.equal(float32ToFloat16Bits(-mid), 0x8000 | even);
  }
});

Deno.test("float32ToFloat16Bits agrees with Math.f16round on random float32 values", () => {
  const r = rng(1234);
  const u = new Uint32Array(1);
  const f = new Float32Array(u.buffer);
  for (let i = 0; i < 200_000; i++) {
    u[0] = Math.floor(r() * 2 ** 32); // every float32 bit pattern is possible
    const v = f[0];
    const bits = float32ToFloat16Bits(v);
    if (Number.isNaN(v)) {
      assert.ok(isNaNHalf(bits));
      continue;
    }
    assert.ok(Object.is(float16BitsToFloat32(bits), Math.f16round(v)), `${v}`);
  }
});

Deno.test("host arrays per dtype", () => {
  assert.ok(newHostArray("float16", 3) instanceof Uint16Array);
  assert.equal(dtypeOfArray(newHostArray("float16", 1)), "float16");
  assert.equal(dtypeOfArray(newHostArray("int8", 1)), "int8");
  assert.equal(bytesPerElement("float16"), 2);
  assert.equal(bytesPerElement("int32"), 4);
});
