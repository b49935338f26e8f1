/**
 * INT8 Convolution, FullyConnected and MatrixMultiply on the CPU against an integer reference
 * written here from the documented rules (runtime/cpu/_quant.ts): symmetric per-tensor
 * activations, per-output-channel weights, int32 sums, float32 requantization. The CPU kernels
 * must match bit for bit: the GPU kernels are held to the same values.
 */
import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import { N, Network } from "../../../dsl/network.ts";
import { Logger } from "../../../runtime/logger.ts";
import { randomArray, rng } from "../../_util.ts";

const f = Math.fround;

/** Round half to even, written independently of the kernels. */
function roundHalfEven(v: number): number {
  const fl = Math.floor(v), diff = v - fl;
  if (diff > 0.5) return fl + 1;
  if (diff < 0.5) return fl;
  return fl % 2 === 0 ? fl : fl + 1;
}

function q8(x: number, s: number): number {
  return Math.max(-127, Math.min(127, roundHalfEven(f(x / s))));
}

function stepOf(amax: number): number {
  return f(amax / 127);
}

/** Per-row weight quantization: steps and integer weights. */
function quantRows(w: Float32Array, rows: number): { s: number[]; q: number[] } {
  const cols = w.length / rows, s: number[] = [], q: number[] = [];
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let j = 0; j < cols; j++) amax = Math.max(amax, Math.abs(w[r * cols + j]));
    s.push(amax > 0 ? f(amax / 127) : 1);
    for (let j = 0; j < cols; j++) q.push(q8(w[r * cols + j], s[r]));
  }
  return { s, q };
}

/** The float32 result of one output element from its int32 sum. */
function requant(acc: number, sx: number, sw: number, bias: number): number {
  assert.ok(Number.isInteger(acc) && Math.abs(acc) < 2 ** 31);
  return f(f(f(acc) * f(sx * sw)) + bias);
}

const XR = 1.5, CR = 6, YR = 20;

/**
 * conv (2→4 channels, 3×3, pad 1, stride 2, 2 groups) + relu, INT8, written as INT8 for the
 * INT8 fully connected layer (10 outputs) after it; the network output is FP32.
 */
function convFcNetwork(w: Float32Array, b: Float32Array, fw: Float32Array, fb: Float32Array) {
  const net = new Network();
  const x = net.input("x", [N, 2, 7, 7]).setDynamicRange(-XR, XR);
  const conv = net.addConvolution(x, {
    outputs: 4,
    kernel: 3,
    padding: 1,
    stride: 2,
    groups: 2,
    weights: w,
    bias: b,
  });
  const r = conv.output(0).relu().setDynamicRange(0, CR);
  const fc = net.addFullyConnected(r, { outputs: 10, weights: fw, bias: fb });
  fc.output(0).setDynamicRange(-YR, YR);
  net.markOutput(fc.output(0), "y");
  net.markOutput(r, "h");
  conv.precision = "int8";
  fc.precision = "int8";
  return net;
}

function convFcReference(
  x: Float32Array,
  batch: number,
  w: Float32Array,
  b: Float32Array,
  fw: Float32Array,
  fb: Float32Array,
): { y: Float32Array; h: Float32Array } {
  const sx = stepOf(XR), sc = stepOf(CR);
  const qw = quantRows(w, 4), qf = quantRows(fw, 10);
  const out = new Float32Array(batch * 10), h: number[] = [];
  for (let n = 0; n < batch; n++) {
    // conv: output 4×4, groups of 1 input channel → 2 outputs each.
    const hidden: number[] = [];
    for (let k = 0; k < 4; k++) {
      const c = k >> 1;
      for (let oy = 0; oy < 4; oy++) {
        for (let ox = 0; ox < 4; ox++) {
          let acc = 0;
          for (let i = 0; i < 3; i++) {
            for (let j = 0; j < 3; j++) {
              const iy = oy * 2 - 1 + i, ix = ox * 2 - 1 + j;
              if (iy < 0 || iy >= 7 || ix < 0 || ix >= 7) continue;
              acc += q8(x[((n * 2 + c) * 7 + iy) * 7 + ix], sx) * qw.q[k * 9 + i * 3 + j];
            }
          }
          const y = Math.max(0, requant(acc, sx, qw.s[k], b[k]));
          h.push(y); // the network output "h": dequantized, FP32
          hidden.push(q8(y, sc)); // requantized for the INT8 reader
        }
      }
    }
    for (let o = 0; o < 10; o++) {
      let acc = 0;
      for (let p = 0; p < 64; p++) acc += hidden[p] * qf.q[o * 64 + p];
      out[n * 10 + o] = requant(acc, sc, qf.s[o], fb[o]);
    }
  }
  return { y: out, h: Float32Array.from(h) };
}

function assertBitEqual(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      assert.fail(
        `${what}: element ${i} is ${actual[i]}, the integer reference gives ${expected[i]}`,
      );
    }
  }
}

Deno.test("INT8 convolution + fully connected equal the integer reference bit for bit, batch 1 and 3", async () => {
  const r = rng(11);
  const w = randomArray(4 * 9, r), b = randomArray(4, r, -0.2, 0.2);
  const fw = randomArray(10 * 64, r, -0.5, 0.5), fb = randomArray(10, r);
  const engine = await buildEngine(convFcNetwork(w, b, fw, fb), {
    device: "cpu",
    maxBatchSize: 3,
    strictTypes: true,
    logger: new Logger("error"),
  });
  const layers = engine.describe().layers;
  assert.deepEqual(
    layers.filter((l) => l.kind !== "Reformat").map((l) => l.precision),
    ["int8", "int8"],
  );
  // Quantizes of the input and of "h", which the conv writes in FP32 as a network output.
  assert.deepEqual(layers.filter((l) => l.kind === "Reformat").map((l) => l.precision), [
    "int8",
    "int8",
  ]);
  using ctx = engine.createContext();
  for (const batch of [1, 3]) {
    const x = randomArray(batch * 98, rng(100 + batch), -2, 2); // beyond the range: clamps
    const out = await ctx.execute({ x });
    const ref = convFcReference(x, batch, w, b, fw, fb);
    assertBitEqual(out.h, ref.h, `conv output, batch ${batch}`);
    assertBitEqual(out.y, ref.y, `fc output, batch ${batch}`);
  }
  engine[Symbol.dispose]();
});

Deno.test("INT8 matrix multiply of two activations equals the integer reference, with bias broadcast over N", async () => {
  const r = rng(12);
  const net = new Network();
  const a = net.input("a", [N, 3, 5]).setDynamicRange(-1, 1);
  const bIn = net.input("b", [N, 4, 5]).setDynamicRange(-2, 2);
  const bias = randomArray(4, r);
  const mm = net.addMatrixMultiply([a, bIn], { transposeB: true, bias });
  mm.precision = "int8";
  net.markOutput(mm.output(0), "y");
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 3,
    strictTypes: true,
    logger: new Logger("error"),
  });
  using ctx = engine.createContext();
  for (const batch of [1, 3]) {
    const av = randomArray(batch * 15, rng(7 + batch)),
      bv = randomArray(batch * 20, rng(9 + batch));
    const y = (await ctx.execute({ a: av, b: bv })).y as Float32Array;
    const sa = stepOf(1), sb = stepOf(2), expected = new Float32Array(batch * 12);
    for (let n = 0; n < batch; n++) {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 4; j++) {
          let acc = 0;
          for (let p = 0; p < 5; p++) {
            acc += q8(av[n * 15 + i * 5 + p], sa) * q8(bv[n * 20 + j * 5 + p], sb);
          }
          expected[n * 12 + i * 4 + j] = f(f(f(acc) * f(sa * sb)) + bias[j]);
        }
      }
    }
    assertBitEqual(y, expected, `batch ${batch}`);
  }
  engine[Symbol.dispose]();
});

Deno.test("INT8 results stay within one output step of FP32 on in-range inputs", async () => {
  const r = rng(13);
  const w = randomArray(4 * 9, r), b = randomArray(4, r, -0.2, 0.2);
  const fw = randomArray(10 * 64, r, -0.5, 0.5), fb = randomArray(10, r);
  const x = randomArray(3 * 98, rng(14), -XR, XR);
  const logger = new Logger("error");
  const run = async (int8: boolean) => {
    const net = convFcNetwork(w, b, fw, fb);
    if (!int8) { for (const l of net.layers) l.precision = undefined; }
    const e = await buildEngine(net, { device: "cpu", maxBatchSize: 3, logger });
    using ctx = e.createContext();
    const y = (await ctx.execute({ x })).y as Float32Array;
    e[Symbol.dispose]();
    return y;
  };
  const [q, fp] = [await run(true), await run(false)];
  let worst = 0, scale = 0;
  for (let i = 0; i < q.length; i++) {
    worst = Math.max(worst, Math.abs(q[i] - fp[i]));
    scale = Math.max(scale, Math.abs(fp[i]));
  }
  // Quantization noise of 64 + 18 products: small against the outputs, yet not zero.
  assert.ok(worst > 0, "INT8 gave FP32's exact values: it did not quantize");
  assert.ok(worst < 0.05 * scale, `INT8 error ${worst} against output scale ${scale}`);
});
