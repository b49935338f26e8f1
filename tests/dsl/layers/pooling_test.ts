import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import { KilnError } from "../../../errors.ts";
import { N, Network } from "../../../dsl/network.ts";
import { Logger } from "../../../runtime/logger.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

interface Pool {
  type: "max" | "average";
  window: [number, number];
  stride: [number, number];
  padding: [number, number];
  postPadding: [number, number];
  excludePadding: boolean;
  rounding: "floor" | "ceil";
}

/**
 * Output size. floor: ⌊(H + pre + post − k)/s⌋ + 1 (TensorRT). ceil: Caffe's PoolingLayer::Reshape,
 * ⌈(H + 2·pad − k)/s⌉ + 1, minus one when padding is present and the last window would start at or
 * past H + pad (written here with pre/post padding; Caffe's tests use pre = post).
 */
function outSize(h: number, k: number, s: number, pre: number, post: number, r: string): number {
  if (r === "floor") return Math.floor((h + pre + post - k) / s) + 1;
  let out = Math.ceil((h + pre + post - k) / s) + 1;
  if ((pre || post) && (out - 1) * s >= h + pre) out--;
  return out;
}

/**
 * Caffe's forward pass: max over the window clipped to the image; average divides by the window
 * clipped to the padded image (hend = min(hstart + k, H + pad)) or, with excludePadding, by the
 * number of image elements in it (TensorRT's default).
 */
function referencePool(
  p: Pool,
  dims: [number, number, number, number],
  x: ArrayLike<number>,
): { dims: number[]; y: Float64Array } {
  const [n, c, h, w] = dims;
  const oh = outSize(h, p.window[0], p.stride[0], p.padding[0], p.postPadding[0], p.rounding);
  const ow = outSize(w, p.window[1], p.stride[1], p.padding[1], p.postPadding[1], p.rounding);
  const y = new Float64Array(n * c * oh * ow);
  for (let b = 0; b < n * c; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        const hs = oy * p.stride[0] - p.padding[0], ws = ox * p.stride[1] - p.padding[1];
        const he = Math.min(hs + p.window[0], h + p.postPadding[0]);
        const we = Math.min(ws + p.window[1], w + p.postPadding[1]);
        let max = -Infinity, sum = 0, count = 0;
        for (let iy = Math.max(hs, 0); iy < Math.min(he, h); iy++) {
          for (let ix = Math.max(ws, 0); ix < Math.min(we, w); ix++) {
            const v = x[(b * h + iy) * w + ix];
            max = Math.max(max, v);
            sum += v;
            count++;
          }
        }
        const poolSize = p.excludePadding ? count : (he - hs) * (we - ws);
        y[(b * oh + oy) * ow + ox] = p.type === "max" ? max : sum / poolSize;
      }
    }
  }
  return { dims: [n, c, oh, ow], y };
}

function pool(over: Partial<Pool>): Pool {
  return {
    type: "max",
    window: [2, 2],
    stride: [2, 2],
    padding: [0, 0],
    postPadding: [0, 0],
    excludePadding: true,
    rounding: "floor",
    ...over,
  };
}

const TOL = { rtol: 1e-6, atol: 1e-7 };

/** One Pooling layer on [N, c, h, w], checked at batch 1 and 3 on the same engine. */
async function checkPool(p: Pool, c: number, h: number, w: number, seed: number) {
  const net = new Network();
  const x = net.input("x", [N, c, h, w]);
  const y = net.addPooling(x, { name: "pool", ...p }).output(0);
  const want1 = referencePool(p, [1, c, h, w], new Float32Array(c * h * w));
  assert.deepEqual(y.dims, [N, ...want1.dims.slice(1)], `output dims for ${JSON.stringify(p)}`);
  net.markOutput(y, "y");
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 3,
    logger: new Logger("error"),
  });
  using ctx = engine.createContext();
  const r = rng(seed);
  for (const batch of [1, 3]) {
    const data = randomArray(batch * c * h * w, r);
    const out = await ctx.execute({ x: data });
    const want = referencePool(p, [batch, c, h, w], data);
    assertClose(out.y as Float32Array, want.y, TOL, `${JSON.stringify(p)} batch ${batch}`);
  }
  engine[Symbol.dispose]();
}

Deno.test("Pooling max and average, floor rounding, with and without padding", async () => {
  let seed = 1;
  for (const type of ["max", "average"] as const) {
    for (const excludePadding of [true, false]) {
      await checkPool(pool({ type, excludePadding }), 2, 6, 8, seed++);
      await checkPool(
        pool({
          type,
          excludePadding,
          window: [3, 3],
          stride: [2, 2],
          padding: [1, 1],
          postPadding: [1, 1],
        }),
        3,
        7,
        6,
        seed++,
      );
      await checkPool(
        pool({
          type,
          excludePadding,
          window: [3, 2],
          stride: [1, 2],
          padding: [2, 1],
          postPadding: [0, 1],
        }),
        2,
        5,
        7,
        seed++,
      );
    }
  }
});

Deno.test("Pooling ceil rounding follows Caffe's output size and window clipping", async () => {
  let seed = 20;
  const cases: [Partial<Pool>, number, number][] = [
    // Caffe: ⌈(6 + 2 − 3)/2⌉ + 1 = 4 rows; the last window starts at 5 < 6 + 1, so all stay.
    [{ window: [3, 3], stride: [2, 2], padding: [1, 1], postPadding: [1, 1] }, 6, 6],
    // ⌈(5 + 2 − 2)/2⌉ + 1 = 4, but the last window would start at 6 ≥ 5 + 1: Caffe drops it.
    [{ window: [2, 2], stride: [2, 2], padding: [1, 1], postPadding: [1, 1] }, 5, 5],
    // No padding: ⌈(8 − 3)/2⌉ + 1 = 4 (floor gives 3); the last window is clipped to the image.
    [{ window: [3, 3], stride: [2, 2] }, 8, 7],
    // GoogLeNet's pool1: 3x3/2 on 112 gives 56 (floor would give 55).
    [{ window: [3, 3], stride: [2, 2] }, 112, 9],
  ];
  for (const [over, h, w] of cases) {
    for (const type of ["max", "average"] as const) {
      for (const excludePadding of [true, false]) {
        await checkPool(pool({ ...over, type, excludePadding, rounding: "ceil" }), 2, h, w, seed++);
      }
    }
  }
  // The output sizes above, by hand.
  const net = new Network();
  const x = net.input("x", [N, 1, 5, 112]);
  const y = x.maxPool({ window: [2, 3], stride: 2, padding: [1, 0], rounding: "ceil" });
  assert.deepEqual(y.dims, [N, 1, 3, 56]);
});

Deno.test("Pooling average: excludePadding true vs false by hand", async () => {
  // 2x2 image [[1, 2], [3, 4]], 2x2 window, stride 1, padding 1: 3x3 outputs.
  const run = async (excludePadding: boolean) => {
    const net = new Network();
    const x = net.input("x", [1, 1, 2, 2]);
    net.markOutput(x.avgPool({ window: 2, stride: 1, padding: 1, excludePadding }), "y");
    return Array.from((await runOnCpu(net, { x: Float32Array.of(1, 2, 3, 4) })).y);
  };
  assert.deepEqual(await run(true), [1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4]);
  assert.deepEqual(await run(false), [0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1]);
});

Deno.test("Pooling max by hand, negative values next to padding", async () => {
  const net = new Network();
  const x = net.input("x", [1, 1, 2, 3]);
  net.markOutput(x.maxPool({ window: 2, stride: 1, padding: [0, 1] }), "y");
  const { y } = await runOnCpu(net, { x: Float32Array.of(-5, -2, -7, -1, -9, -3) });
  // Padding never wins a max: windows over columns (-1,0), (0,1), (1,2), (2,3).
  assert.deepEqual(Array.from(y), [-1, -1, -2, -3]);
});

Deno.test("Pooling global max and average at batch 1 and 3", async () => {
  for (const type of ["max", "average"] as const) {
    const net = new Network();
    const x = net.input("x", [N, 3, 5, 7]);
    const y = x.pool({ type, global: true, window: 2, padding: 1 });
    assert.deepEqual(y.dims, [N, 3, 1, 1]);
    net.markOutput(y, "y");
    const r = rng(type === "max" ? 41 : 42);
    for (const batch of [1, 3]) {
      const data = randomArray(batch * 3 * 35, r);
      const out = await runOnCpu(net, { x: data });
      const want = Array.from({ length: batch * 3 }, (_, p) => {
        const plane = Array.from(data.subarray(p * 35, (p + 1) * 35));
        return type === "max" ? Math.max(...plane) : plane.reduce((a, b) => a + b, 0) / 35;
      });
      assertClose(out.y as Float32Array, want, TOL, `global ${type} batch ${batch}`);
    }
  }
});

Deno.test("Pooling with stride larger than the window and ceil rounding never makes an empty window", async () => {
  // Caffe's formula without padding would give ⌈(5 − 1)/3⌉ + 1 = 3 windows, starting at 0, 3, 6:
  // the last lies wholly past the image. Kiln applies Caffe's "last window starts inside" rule
  // here too, so the output is 2 wide and every value comes from the image.
  const net = new Network();
  const x = net.input("x", [1, 1, 1, 5]);
  const y = x.maxPool({ window: 1, stride: 3, rounding: "ceil" });
  assert.deepEqual(y.dims, [1, 1, 1, 2]);
  net.markOutput(y, "y");
  const out = await runOnCpu(net, { x: Float32Array.of(1, 2, 3, 4, 5) });
  assert.deepEqual(Array.from(out.y), [1, 4]);
});

Deno.test("Pooling fluent shortcuts and defaults (stride = window)", () => {
  const net = new Network();
  const x = net.input("x", [N, 2, 8, 8]);
  const m = x.maxPool({ window: 2 });
  assert.deepEqual(m.dims, [N, 2, 4, 4]);
  assert.equal(m.producer!.attrs.type, "max");
  const a = x.avgPool({ window: [4, 2] });
  assert.deepEqual(a.dims, [N, 2, 2, 4]);
  assert.equal(a.producer!.attrs.type, "average");
  assert.equal(a.producer!.attrs.excludePadding, true);
});

function expectPoolError(f: () => unknown, code: string, ...patterns: RegExp[]): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.layer, "p");
    assert.match(e.message, /Pooling layer "p"/);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

Deno.test("Pooling rejects bad attributes naming layer, attribute, value and what is allowed", () => {
  const net = new Network();
  const x = net.input("x", [N, 2, 8, 8]);
  const add = (args: Record<string, unknown>) => () =>
    net.addPooling(x, { name: "p", ...args } as never);
  expectPoolError(
    add({ type: "sum" }),
    "INVALID_ATTRIBUTE",
    /attribute "type"/,
    /"max"\|"average"/,
    /given: "sum"/,
  );
  expectPoolError(
    add({ type: "max", window: 0 }),
    "INVALID_ATTRIBUTE",
    /attribute "window"/,
    /positive integer/,
    /given: 0/,
  );
  expectPoolError(
    add({ type: "max", rounding: "up" }),
    "INVALID_ATTRIBUTE",
    /attribute "rounding"/,
    /"floor"\|"ceil"/,
    /given: "up"/,
  );
  expectPoolError(
    add({ type: "average", excludePadding: "yes" }),
    "INVALID_ATTRIBUTE",
    /attribute "excludePadding"/,
    /expected boolean/,
  );
  expectPoolError(
    add({ type: "max", window: 2, padding: 2 }),
    "SHAPE_MISMATCH",
    /padding \[2,2\] must be smaller than the window \[2,2\]/,
  );
  // A window wholly inside the trailing padding would pool nothing.
  expectPoolError(
    add({ type: "max", window: 2, padding: 0, postPadding: [0, 3] }),
    "SHAPE_MISMATCH",
    /postPadding \[0,3\] must be smaller than the window \[2,2\]/,
  );
  expectPoolError(add({ type: "max", window: 9 }), "SHAPE_MISMATCH", /the output would be empty/);
  const rank2 = net.input("v", [N, 8]);
  assert.throws(
    () => net.addPooling(rank2, { type: "max", name: "p" }),
    /input 0 must have rank 4/,
  );
});
