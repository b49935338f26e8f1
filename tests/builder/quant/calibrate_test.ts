/**
 * calibrate(): histograms of |x| per tensor and the threshold of each algorithm, checked against
 * histograms and KL searches written here from the definitions (TensorRT's entropy calibration:
 * Migacz, GTC 2017), on known distributions.
 */
import assert from "node:assert/strict";
import { ArrayBatchStream } from "../../../builder/quant/batch_stream.ts";
import { calibrate } from "../../../builder/quant/calibrate.ts";
import {
  EntropyCalibrator2,
  type Int8Calibrator,
  LegacyCalibrator,
  MinMaxCalibrator,
  PercentileCalibrator,
} from "../../../builder/quant/calibrator.ts";
import { N, Network } from "../../../dsl/network.ts";
import { KilnError } from "../../../errors.ts";
import { MemoryLogger } from "../../../runtime/logger.ts";
import { randomArray, rng } from "../../_util.ts";

const BINS = 2048;

/** x → identity → output: the input's histogram is the data's. */
function identityNet(width: number): Network {
  const net = new Network();
  const x = net.input("x", [N, width]);
  net.markOutput(net.addIdentity(x, { name: "copy" }).output(0));
  return net;
}

/** Standard normal samples (Box–Muller) with a few far outliers. */
function gaussianWithOutliers(n: number, outliers: number[], seed: number): Float32Array {
  const r = rng(seed), a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12), v = r();
    a[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  outliers.forEach((o, i) => (a[(i * 7919) % n] = o));
  return a;
}

/** The 2048-bin histogram of |x| over [0, max], written out. */
function referenceHistogram(x: Float32Array): { counts: number[]; width: number } {
  let max = 0;
  for (const v of x) max = Math.max(max, Math.abs(v));
  const counts = new Array(BINS).fill(0), k = BINS / max;
  for (const v of x) counts[Math.min(BINS - 1, Math.floor(Math.abs(v) * k))]++;
  return { counts, width: max / BINS };
}

/**
 * KL(P‖Q) for keeping i bins, straight from the definition: with bin 0's count replaced by bin
 * 1's (pytorch-quantization's discount of exact zeros), P is the first i bins with the outliers
 * piled on the last; Q merges the first i bins (no outliers) into 128 levels and spreads each
 * level's count over the level's bins where P is non-zero.
 */
function referenceKl(histogram: number[], i: number): number {
  const counts = [histogram[1], ...histogram.slice(1)];
  const P = counts.slice(0, i);
  P[i - 1] += counts.slice(i).reduce((a, b) => a + b, 0);
  const perLevel = Math.floor(i / 128);
  const Q = new Array(i).fill(0);
  for (let level = 0; level < 128; level++) {
    const bins = [];
    const end = level === 127 ? i : (level + 1) * perLevel;
    for (let b = level * perLevel; b < end; b++) bins.push(b);
    const mass = bins.reduce((a, b) => a + counts[b], 0);
    const support = bins.filter((b) => P[b] > 0);
    for (const b of support) Q[b] = mass / support.length;
  }
  const sp = P.reduce((a, b) => a + b, 0), sq = Q.reduce((a, b) => a + b, 0);
  let kl = 0;
  for (let b = 0; b < i; b++) {
    if (P[b] === 0) continue;
    if (Q[b] === 0) return Infinity;
    kl += (P[b] / sp) * Math.log((P[b] / sp) / (Q[b] / sq));
  }
  return kl;
}

function calibratorOf(
  kind: "entropy2" | "minmax" | "percentile" | "legacy",
  data: Float32Array,
  width: number,
  batchSize: number,
  extra: { percentile?: number; quantile?: number; regressionCutoff?: number } = {},
): Int8Calibrator {
  const stream = new ArrayBatchStream({ x: data }, { batchSize, count: data.length / width });
  switch (kind) {
    case "entropy2":
      return new EntropyCalibrator2(stream);
    case "minmax":
      return new MinMaxCalibrator(stream);
    case "percentile":
      return new PercentileCalibrator(stream, extra);
    case "legacy":
      return new LegacyCalibrator(stream, extra);
  }
}

const quiet = () => new MemoryLogger("verbose");

Deno.test("entropy2: a Gaussian with outliers: the KL curve and threshold equal the definition's; the threshold lands far below the max", async () => {
  const width = 500, data = gaussianWithOutliers(width * 40, [40, -35, 50, 45], 11);
  const result = await calibrate(identityNet(width), calibratorOf("entropy2", data, width, 40), {
    logger: quiet(),
  });
  const h = result.histograms.get("x")!;
  const ref = referenceHistogram(data);
  assert.deepEqual(h.counts, ref.counts, "histogram of |x|");
  assert.equal(h.max, 50);
  const kl = h.kl!;
  assert.equal(kl.length, BINS - 128 + 1);
  const want: number[] = [];
  for (let i = 128; i <= BINS; i++) want.push(referenceKl(ref.counts, i));
  want.forEach((v, j) => {
    const got = kl[j];
    if (v === Infinity) assert.equal(got, Infinity, `KL at ${j + 128} bins`);
    else {assert.ok(
        Math.abs(got - v) <= 1e-9 * Math.max(1, v),
        `KL at ${j + 128} bins: ${got} vs ${v}`,
      );}
  });
  assert.ok(
    want.some((v) => v === Infinity) && want.some(Number.isFinite),
    "both kinds of candidates",
  );
  // The least divergence, the last one on ties.
  let best = 0;
  want.forEach((v, j) => {
    if (v <= want[best]) best = j;
  });
  best += 128;
  assert.equal(h.threshold, best * ref.width);
  assert.equal(h.klThresholds![best - 128], h.threshold);
  assert.ok(h.threshold < 10 && h.threshold > 2.5, `threshold ${h.threshold} (max 50)`);
  assert.equal(result.scales.get("x"), Math.fround(h.threshold / 127));
  // The identity's output is the same data, so the same threshold.
  assert.equal(result.scales.get("copy"), result.scales.get("x"));
});

Deno.test("entropy2: a uniform distribution keeps (nearly) its whole range", async () => {
  const width = 256, data = randomArray(width * 32, rng(3), -4, 4);
  const r = await calibrate(identityNet(width), calibratorOf("entropy2", data, width, 32), {
    logger: quiet(),
  });
  const h = r.histograms.get("x")!;
  assert.ok(h.threshold > 0.9 * h.max, `threshold ${h.threshold}, max ${h.max}`);
});

Deno.test("minmax: the threshold is max |x| exactly, over several batches", async () => {
  const width = 64, data = randomArray(width * 12, rng(5), -3, 2);
  data[width * 9 + 5] = -7.25; // in the 5th batch of 2 items
  const r = await calibrate(identityNet(width), calibratorOf("minmax", data, width, 2), {
    logger: quiet(),
  });
  assert.equal(r.batches, 6);
  assert.equal(r.histograms.get("x")!.threshold, 7.25);
  assert.equal(r.scales.get("x"), Math.fround(7.25 / 127));
  assert.equal(r.histograms.get("x")!.kl, undefined);
});

Deno.test("percentile: the upper edge of the bin where the cumulative count reaches p, from a reference histogram", async () => {
  const width = 1000, data = gaussianWithOutliers(width * 10, [30], 8);
  const ref = referenceHistogram(data);
  const expected = (p: number) => {
    let cum = 0;
    for (let b = 0; b < BINS; b++) {
      cum += ref.counts[b];
      if (cum >= (p / 100) * data.length) return Math.min((b + 1) * ref.width, 30);
    }
    return 30;
  };
  for (const p of [99.99, 99.9, 50, 100]) {
    const r = await calibrate(
      identityNet(width),
      calibratorOf("percentile", data, width, 10, { percentile: p }),
      {
        logger: quiet(),
      },
    );
    assert.equal(r.histograms.get("x")!.threshold, expected(p), `percentile ${p}`);
  }
  // The default is 99.99.
  const d = await calibrate(identityNet(width), calibratorOf("percentile", data, width, 10), {
    logger: quiet(),
  });
  assert.equal(d.histograms.get("x")!.threshold, expected(99.99));
});

Deno.test("legacy: min(quantile, regression cutoff · max)", async () => {
  const width = 1000, data = gaussianWithOutliers(width * 10, [30], 9);
  const ref = referenceHistogram(data);
  let cum = 0, quantile = 30;
  for (let b = 0; b < BINS; b++) {
    cum += ref.counts[b];
    if (cum >= 0.999 * data.length) {
      quantile = (b + 1) * ref.width;
      break;
    }
  }
  const q = await calibrate(
    identityNet(width),
    calibratorOf("legacy", data, width, 10, { quantile: 0.999 }),
    {
      logger: quiet(),
    },
  );
  assert.equal(q.histograms.get("x")!.threshold, quantile);
  const c = await calibrate(
    identityNet(width),
    calibratorOf("legacy", data, width, 10, { quantile: 1, regressionCutoff: 0.05 }),
    { logger: quiet() },
  );
  assert.equal(c.histograms.get("x")!.threshold, 0.05 * 30);
});

Deno.test("the histogram range doubles as later batches grow: counts equal binning all the data over the final range", async () => {
  const width = 128, r = rng(21);
  // Batch 1 within [0, 1) (max exactly 1), batch 2 up to 3.5: the range grows 1 → 2 → 4.
  const a = randomArray(width, r, -1, 1), b = randomArray(width, r, -3.5, 3.5);
  a[3] = 1;
  b[7] = -3.5;
  const data = new Float32Array([...a, ...b]);
  const res = await calibrate(identityNet(width), calibratorOf("minmax", data, width, 1), {
    logger: quiet(),
  });
  const h = res.histograms.get("x")!;
  assert.equal(h.edges[BINS], 4);
  const counts = new Array(BINS).fill(0);
  for (const v of data) counts[Math.min(BINS - 1, Math.floor(Math.abs(v) * (BINS / 4)))]++;
  // The last bin is closed: batch 1's max (1, the range then) was counted in the bin below 1,
  // and a doubling keeps it there (bin 511 of [0, 4]) rather than in the bin starting at 1.
  counts[512]--;
  counts[511]++;
  assert.deepEqual(h.counts, counts);
  assert.equal(h.max, 3.5);
});

Deno.test("calibration runs the FP32 network: each layer's histogram is of its own output (FC + ReLU at batch 3)", async () => {
  const r = rng(4), width = 6, outs = 5;
  const w = randomArray(outs * width, r), bias = randomArray(outs, r);
  const net = new Network();
  const x = net.input("x", [N, width]);
  const fc = net.addFullyConnected(x, { name: "fc", outputs: outs, weights: w, bias });
  const relu = net.addActivation(fc.output(0), { name: "relu", type: "relu" });
  net.markOutput(relu.output(0));
  const data = randomArray(width * 9, r, -2, 2);
  const res = await calibrate(net, calibratorOf("minmax", data, width, 3), { logger: quiet() });
  let fcMax = 0, reluMax = 0;
  for (let n = 0; n < 9; n++) {
    for (let o = 0; o < outs; o++) {
      let acc = bias[o];
      for (let i = 0; i < width; i++) acc += data[n * width + i] * w[o * width + i];
      fcMax = Math.max(fcMax, Math.abs(acc));
      reluMax = Math.max(reluMax, acc);
    }
  }
  assert.ok(Math.abs(res.histograms.get(fc.output(0).name)!.max - fcMax) <= 1e-5 * fcMax);
  assert.ok(Math.abs(res.histograms.get(relu.output(0).name)!.max - reluMax) <= 1e-5 * reluMax);
  assert.equal(
    res.histograms.get(relu.output(0).name)!.counts.reduce((a, b) => a + b, 0),
    9 * outs,
  );
});

Deno.test("bad calibration input is a KilnError naming the tensor or the batch", async () => {
  const net = identityNet(4);
  const of = (batches: unknown[], batchSize = 2): Int8Calibrator => {
    let i = 0;
    return {
      batchSize,
      algorithm: "minmax",
      getBatch: () => (batches[i++] ?? null) as Record<string, Float32Array>,
    };
  };
  const cases: [Int8Calibrator, RegExp][] = [
    [of([]), /no batch/],
    [of([{ x: new Float32Array(7) }]), /batch 0: input "x" must be a Float32Array of 8 values/],
    [of([{ x: new Float32Array(8), y: new Float32Array(8) }]), /"y", not a network input/],
    [of([{ x: new Float32Array(8).fill(NaN) }]), /tensor "x" has the non-finite value NaN/],
    [of([{ x: new Float32Array(8) }], 0), /batchSize must be a positive integer/],
    [{ ...of([]), algorithm: "kl" as "minmax" }, /algorithm "kl" is not one of/],
  ];
  for (const [c, re] of cases) {
    await assert.rejects(
      calibrate(net, c, { logger: quiet() }),
      (e) => e instanceof KilnError && re.test(e.message),
    );
  }
});

Deno.test("an all-zero tensor gets scale 1/127 with a warning", async () => {
  const logger = quiet();
  const r = await calibrate(identityNet(4), calibratorOf("entropy2", new Float32Array(16), 4, 2), {
    logger,
  });
  assert.equal(r.scales.get("x"), Math.fround(1 / 127));
  assert.ok(
    logger.messages.some((m) => m.severity === "warning" && /"x" was zero/.test(m.message)),
  );
});

Deno.test("entropy2: a ReLU output's exact zeros do not move the threshold (the zero bin is discounted)", async () => {
  const width = 500, positive = gaussianWithOutliers(width * 20, [12], 13).map(Math.abs);
  const withZeros = new Float32Array(positive.length * 2);
  withZeros.set(positive); // the second half stays exactly zero
  const a = await calibrate(identityNet(width), calibratorOf("entropy2", positive, width, 20), {
    logger: quiet(),
  });
  const b = await calibrate(identityNet(width), calibratorOf("entropy2", withZeros, width, 40), {
    logger: quiet(),
  });
  const ta = a.histograms.get("x")!.threshold, tb = b.histograms.get("x")!.threshold;
  assert.equal(tb, ta);
  assert.ok(ta > 2.5 && ta < 12, `threshold ${ta}`);
});
