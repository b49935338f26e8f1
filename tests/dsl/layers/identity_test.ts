import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import { KilnError } from "../../../errors.ts";
import type { DType, HostArray } from "../../../dsl/ir/dtype.ts";
import { N, Network } from "../../../dsl/network.ts";
import { Logger } from "../../../runtime/logger.ts";
import { randomArray, rng, runOnCpu } from "../../_util.ts";

/** Round half to even, then saturate to [lo, hi]; NaN → 0 (CUDA's __float2int_rn + clamp). */
function toIntReference(v: number, lo: number, hi: number): number {
  if (Number.isNaN(v)) return 0;
  const f = Math.floor(v), d = v - f;
  const r = d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
  return Math.min(hi, Math.max(lo, r));
}

/** The value of half bits by the binary16 definition (independent of dsl/ir/dtype.ts). */
function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 31) return m ? NaN : s * Infinity;
  return e === 0 ? s * m / 2 ** 24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Builds x → Identity(dtype) → y with dims [N, 2, 5] and runs it at batch 1 and 3. */
async function convert(
  from: DType,
  to: DType,
  make: (n: number, batch: number) => HostArray,
): Promise<{ x: HostArray; y: HostArray }[]> {
  const net = new Network();
  const x = net.input("x", [N, 2, 5], from);
  const y = x.cast(to);
  assert.equal(y.dtype, to);
  net.markOutput(y, "y");
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 3,
    logger: new Logger("error"),
  });
  using ctx = engine.createContext();
  const out = [];
  for (const batch of [1, 3]) {
    const data = make(batch * 10, batch);
    const r = await ctx.execute({ x: data });
    out.push({ x: data, y: r.y });
  }
  engine[Symbol.dispose]();
  return out;
}

Deno.test("Identity float32 → int32 rounds half to even and saturates (batch 1 and 3)", async () => {
  const r = rng(3);
  const special = [2.5, -2.5, 3.5, -0.5, 0.5, 1.49, -1.51, 3e9, -3e9, NaN, Infinity, -Infinity];
  const runs = await convert("float32", "int32", (n) => {
    const a = randomArray(n, r, -1000, 1000);
    a.set(special.slice(0, Math.min(n, special.length)));
    return a;
  });
  for (const { x, y } of runs) {
    assert.ok(y instanceof Int32Array);
    assert.deepEqual(
      Array.from(y),
      Array.from(x, (v) => toIntReference(v, -(2 ** 31), 2 ** 31 - 1)),
    );
  }
  assert.deepEqual(Array.from(runs[1].y.subarray(0, 12)), [
    2,
    -2,
    4,
    0,
    0,
    1,
    -2,
    2147483647,
    -2147483648,
    0,
    2147483647,
    -2147483648,
  ]);
});

Deno.test("Identity float32 → int8 rounds half to even and saturates to [-128, 127]", async () => {
  const r = rng(4);
  const runs = await convert("float32", "int8", (n) => {
    const a = randomArray(n, r, -300, 300);
    a.set([126.5, 127.5, -128.5, -129, 1000, 0.5].slice(0, Math.min(n, 6)));
    return a;
  });
  for (const { x, y } of runs) {
    assert.ok(y instanceof Int8Array);
    assert.deepEqual(Array.from(y), Array.from(x, (v) => toIntReference(v, -128, 127)));
  }
  assert.deepEqual(Array.from(runs[0].y.subarray(0, 6)), [126, 127, -128, -128, 127, 0]);
});

Deno.test("Identity float32 → float16 → float32 rounds to the nearest half", async () => {
  const r = rng(5);
  const toHalf = await convert("float32", "float16", (n) => {
    const a = randomArray(n, r, -70000, 70000);
    a.set([0.1, 65520, -1e-8, 1, 2 ** -24].slice(0, Math.min(n, 5)));
    return a;
  });
  for (const { x, y } of toHalf) {
    assert.ok(y instanceof Uint16Array);
    for (let i = 0; i < x.length; i++) {
      // Reference: the nearest half by Math.f16round; ties and overflow follow IEEE.
      assert.ok(
        Object.is(halfValue(y[i]), Math.f16round(x[i])),
        `${x[i]} → 0x${y[i].toString(16)}`,
      );
    }
  }
  assert.deepEqual(Array.from(toHalf[0].y.subarray(0, 5)), [0x2e66, 0x7c00, 0x8000, 0x3c00, 1]);

  const fromHalf = await convert("float16", "float32", (n) => {
    const a = new Uint16Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.floor(r() * 65536);
    a.set([0x3c00, 0x0001, 0xfc00, 0x7bff, 0x8000].slice(0, Math.min(n, 5)));
    return a;
  });
  for (const { x, y } of fromHalf) {
    assert.ok(y instanceof Float32Array);
    for (let i = 0; i < x.length; i++) {
      const want = halfValue(x[i]);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(y[i]));
      else assert.ok(Object.is(y[i], want), `0x${x[i].toString(16)} → ${y[i]}, want ${want}`);
    }
  }
  assert.deepEqual(Array.from(fromHalf[0].y.subarray(0, 5)), [1, 2 ** -24, -Infinity, 65504, -0]);
});

Deno.test("Identity float16 → int32 / int8 converts the half's value, not its bits", async () => {
  const halves = [0x3c00, 0x4100, 0xc100, 0x5bd0, 0x7c00, 0xfe00, 0x3800, 0x3e00, 0x4500, 0xd640];
  // 1, 2.5, -2.5, 250, inf, NaN, 0.5, 1.5, 5, -100
  const makeHalves = (n: number) => Uint16Array.from({ length: n }, (_, i) => halves[i % 10]);
  for (const [to, lo, hi] of [["int32", -(2 ** 31), 2 ** 31 - 1], ["int8", -128, 127]] as const) {
    const runs = await convert("float16", to, makeHalves);
    for (const { x, y } of runs) {
      assert.deepEqual(Array.from(y), Array.from(x, (h) => toIntReference(halfValue(h), lo, hi)));
    }
    assert.deepEqual(
      Array.from(runs[0].y),
      to === "int32"
        ? [1, 2, -2, 250, 2147483647, 0, 0, 2, 5, -100]
        : [1, 2, -2, 127, 127, 0, 0, 2, 5, -100],
    );
  }
});

Deno.test("Identity integer conversions: int32 → float32/int8/float16, int8 → float32/int32", async () => {
  const r = rng(6);
  const ints = (n: number) =>
    Int32Array.from({ length: n }, (_, i) => i === 0 ? 16777217 : Math.floor((r() - 0.5) * 1000));
  for (const { x, y } of await convert("int32", "float32", ints)) {
    assert.deepEqual(Array.from(y), Array.from(x, (v) => Math.fround(v)));
  }
  for (const { x, y } of await convert("int32", "int8", ints)) {
    assert.deepEqual(Array.from(y), Array.from(x, (v) => Math.max(-128, Math.min(127, v))));
  }
  for (const { x, y } of await convert("int32", "float16", ints)) {
    assert.deepEqual(Array.from(y, halfValue), Array.from(x, (v) => Math.f16round(v)));
  }
  const bytes = (n: number) => Int8Array.from({ length: n }, (_, i) => (i * 37) % 256 - 128);
  for (const { x, y } of await convert("int8", "float32", bytes)) {
    assert.deepEqual(Array.from(y), Array.from(x));
  }
  for (const { x, y } of await convert("int8", "int32", bytes)) {
    assert.deepEqual(Array.from(y), Array.from(x));
  }
});

Deno.test("Identity without a dtype copies exactly, for every dtype", async () => {
  const r = rng(7);
  const cases: [DType, HostArray][] = [
    ["float32", randomArray(12, r)],
    ["int32", Int32Array.from({ length: 12 }, (_, i) => i * 1000003 - 5)],
    ["int8", Int8Array.from({ length: 12 }, (_, i) => i * 21 - 128)],
    ["float16", Uint16Array.from({ length: 12 }, (_, i) => 0x7c01 + i * 3001)],
  ];
  for (const [dtype, data] of cases) {
    const net = new Network();
    const x = net.input("x", [N, 4], dtype);
    const y = x.identity();
    assert.equal(y.dtype, dtype);
    net.markOutput(y, "y");
    const out = await runOnCpu(net, { x: data });
    assert.equal(out.y.constructor, data.constructor);
    assert.deepEqual(Array.from(out.y), Array.from(data), dtype);
  }
});

Deno.test("Identity rejects a bad dtype naming layer, attribute, value and choices", () => {
  const net = new Network();
  const x = net.input("x", [N, 4]);
  assert.throws(
    () => net.addIdentity(x, { dtype: "float64", name: "cast1" } as never),
    (e: unknown) => {
      assert.ok(e instanceof KilnError);
      assert.equal(e.code, "INVALID_ATTRIBUTE");
      assert.equal(e.layer, "cast1");
      assert.match(e.message, /Identity layer "cast1": attribute "dtype"/);
      assert.match(e.message, /"float32"\|"float16"\|"int8"\|"int32"/);
      assert.match(e.message, /given: "float64"/);
      return true;
    },
  );
  assert.throws(() => net.addIdentity([x, x], {}), /takes 1 input\(s\), got 2/);
});
