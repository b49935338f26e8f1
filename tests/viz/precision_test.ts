/** viz/precision.ts: the per-layer precision and error figure and its text table. */
import assert from "node:assert/strict";
import { PRECISION_COLORS, precisionFigure, precisionTable } from "../../viz/precision.ts";

const ROWS = [
  { layer: "conv1", precision: "int8", maxRelError: 0.02, meanRelError: 0.01, kind: "Convolution" },
  { layer: "pool1", precision: "fp32", maxRelError: 0, meanRelError: 0 },
  { layer: "fc", precision: "fp16", maxRelError: 1e-3, meanRelError: 4e-4 },
  { layer: "prob", precision: "fp32", maxRelError: 5e-4, meanRelError: 1e-4 },
];

Deno.test("precisionFigure: one bar trace per precision in layer order, log axis, zero drawn at the floor", () => {
  const fig = precisionFigure(ROWS);
  const bars = fig.data.filter((d) => d.type === "bar");
  assert.deepEqual(bars.map((b) => b.name), ["INT8", "FP32", "FP16"]);
  const fp32 = bars[1];
  assert.deepEqual(fp32.x, ["conv1", "pool1", "fc", "prob"]);
  // pool1's zero error is drawn at a tenth of the smallest positive value; conv1 is not FP32.
  assert.deepEqual(fp32.y, [null, 1e-5, null, 5e-4]);
  assert.equal((fp32.marker as { color: string }).color, PRECISION_COLORS.fp32);
  const mean = fig.data.find((d) => d.type === "scatter")!;
  assert.deepEqual(mean.y, [0.01, 1e-5, 4e-4, 1e-4]);
  assert.equal((fig.layout.yaxis as { type: string }).type, "log");
  assert.match(String((bars[0].hovertext as string[])[0]), /conv1 \(Convolution\)<br>INT8/);
  assert.doesNotThrow(() => JSON.stringify(fig));
});

Deno.test("precisionTable lists layer, precision and both errors", () => {
  const lines = precisionTable(ROWS).split("\n");
  assert.equal(lines.length, 5);
  assert.match(lines[1], /^conv1\s+int8\s+2\.00e-2\s+1\.00e-2$/);
  assert.match(lines[2], /^pool1\s+fp32\s+0\.00e\+0\s+0\.00e\+0$/);
});
