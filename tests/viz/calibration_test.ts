/** viz/calibration.ts: the histogram, KL-curve and scales figures built from a real calibration. */
import assert from "node:assert/strict";
import { ArrayBatchStream } from "../../builder/quant/batch_stream.ts";
import { calibrate } from "../../builder/quant/calibrate.ts";
import { EntropyCalibrator2 } from "../../builder/quant/calibrator.ts";
import { N, Network } from "../../dsl/network.ts";
import { MemoryLogger } from "../../runtime/logger.ts";
import {
  activationHistogramFigure,
  calibrationScalesFigure,
  klDivergenceFigure,
} from "../../viz/calibration.ts";
import { randomArray, rng } from "../_util.ts";

async function calibrated() {
  const net = new Network();
  const x = net.input("x", [N, 64]);
  net.markOutput(net.addActivation(x, { name: "relu", type: "relu" }).output(0));
  // A bell shape (the sum of three uniforms, within ±3) spread over more than 128 bins.
  const u = [0, 1, 2].map((i) => randomArray(64 * 8, rng(7 + i), -1, 1));
  const data = u[0].map((v, i) => v + u[1][i] + u[2][i]);
  data[5] = 20; // an outlier the entropy threshold ignores
  return await calibrate(
    net,
    new EntropyCalibrator2(new ArrayBatchStream({ x: data }, { batchSize: 8, count: 8 })),
    {
      logger: new MemoryLogger(),
    },
  );
}

Deno.test("activationHistogramFigure: log counts up to the last non-empty bin, a line at the threshold, the saturated share", async () => {
  const r = await calibrated();
  const h = r.histograms.get("x")!;
  const fig = activationHistogramFigure("x", h);
  const bars = fig.data[0] as { x: number[]; y: number[]; type: string };
  assert.equal(bars.type, "bar");
  assert.equal(bars.y.length, 2048, "the outlier fills the last bin");
  assert.equal(bars.y.reduce((a, b) => a + b, 0), 512);
  assert.equal((fig.layout.yaxis as { type: string }).type, "log");
  const line = (fig.layout.shapes as { x0: number }[])[0];
  assert.equal(line.x0, h.threshold);
  assert.ok(h.threshold <= 3, `threshold ${h.threshold} ignores the outlier 20`);
  const notes = (fig.layout.annotations as { text: string }[]).map((a) => a.text).join(" ");
  assert.match(notes, /max 20\.00, scale .*; 0\.195% of values saturate/);
  // The ReLU's output has the negative half at zero: the bins above its last value are dropped.
  const relu = activationHistogramFigure("relu", r.histograms.get("relu")!);
  assert.ok((relu.data[0] as { y: number[] }).y.at(-1)! > 0);
});

Deno.test("klDivergenceFigure: one point per candidate (128…2048 bins), Infinity as gaps, the chosen threshold marked at the minimum", async () => {
  const h = (await calibrated()).histograms.get("x")!;
  const fig = klDivergenceFigure("x", h);
  const [curve, mark] = fig.data as { x: number[]; y: (number | null)[] }[];
  assert.equal(curve.x.length, 1921);
  assert.equal(curve.y.length, 1921);
  const finite = curve.y.filter((v): v is number => v !== null);
  assert.equal(mark.x[0], h.threshold);
  assert.equal(mark.y[0], Math.min(...finite));
});

Deno.test("calibrationScalesFigure: threshold and max bars per tensor", async () => {
  const r = await calibrated();
  const maxima = new Map([...r.histograms].map(([n, h]) => [n, h.max]));
  const fig = calibrationScalesFigure(r.scales, maxima);
  const [t, m] = fig.data as { x: string[]; y: number[] }[];
  assert.deepEqual(t.x, ["x", "relu"]);
  assert.ok(Math.abs(t.y[0] - r.histograms.get("x")!.threshold) < 1e-6 * t.y[0]);
  assert.deepEqual(m.y, [20, 20]);
});
