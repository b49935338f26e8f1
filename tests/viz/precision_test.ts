/** viz/precision.ts: the per-layer precision and error figure and its text table. */
import assert from "node:assert/strict";
import {
  PRECISION_COLORS,
  precisionFigure,
  precisionTable,
  precisionTimeFigure,
  timeByPrecision,
} from "../../viz/precision.ts";

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

Deno.test("timeByPrecision sums a profile by each layer's precision, reformats apart; its figure", () => {
  const times = [
    { layer: "reformat x to INT8", kind: "Reformat", ms: 0.5 },
    { layer: "conv1", kind: "Convolution", ms: 2 },
    { layer: "pool1", kind: "Pooling", ms: 1 },
    { layer: "conv2", kind: "Convolution", ms: 3 },
    { layer: "prob", kind: "SoftMax", ms: 0.25 },
  ];
  const layers = [
    { name: "reformat x to INT8", precision: "int8" },
    { name: "conv1", precision: "int8" },
    { name: "pool1", precision: "fp16" },
    { name: "conv2", precision: "int8" },
    { name: "prob", precision: "fp32" },
  ];
  const rows = timeByPrecision(times, layers);
  assert.deepEqual(rows, [
    { precision: "int8", ms: 5, layers: 2 },
    { precision: "fp16", ms: 1, layers: 1 },
    { precision: "fp32", ms: 0.25, layers: 1 },
    { precision: "reformat", ms: 0.5, layers: 1 },
  ]);
  const fig = precisionTimeFigure(rows);
  assert.deepEqual(fig.data[0].x, ["INT8", "FP16", "FP32", "REFORMAT"]);
  assert.match((fig.data[0].text as string[])[0], /^5\.000 ms \(74\.1%\), 2 layers$/);
  assert.match(String((fig.layout.title as { text: string }).text), /total 6\.750 ms/);
});
