import assert from "node:assert/strict";
import { publishDelayMs, show, showWith } from "../../viz/display.ts";
import { histogramFigure, profileFigure } from "../../viz/figures.ts";
import { Svg } from "../../viz/network.ts";

Deno.test("show() sends each figure's and drawing's bundle raw, and waits longer after a large one", async () => {
  const sent: { bundle: Record<string, unknown>; raw: boolean }[] = [];
  const waits: number[] = [];
  const fig = histogramFigure({ edges: [0, 1, 2], counts: [3, 4] });
  const svg = new Svg("<svg>drawing</svg>", "a drawing");
  await showWith(
    (bundle, o) => sent.push({ bundle, raw: o.raw }),
    [fig, svg, profileFigure([{ layer: "a", kind: "Scale", sources: ["a"], ms: 1 }])],
    (ms) => {
      waits.push(ms);
      return Promise.resolve();
    },
  );
  assert.equal(sent.length, 3);
  assert.ok(sent.every((s) => s.raw));
  assert.deepEqual(Object.keys(sent[0].bundle).sort(), [
    "application/vnd.plotly.v1+json",
    "text/html",
    "text/plain",
  ]);
  assert.deepEqual(sent[1].bundle, {
    "image/svg+xml": "<svg>drawing</svg>",
    "text/plain": "a drawing",
  });
  // The first figure carries plotly.js (megabytes): show() waits for it to go out; later ones are small.
  const firstBytes = (sent[0].bundle["text/html"] as string).length;
  assert.ok(firstBytes > 1_000_000);
  assert.deepEqual(waits, [publishDelayMs(firstBytes), 25, 25]);
  assert.ok(waits[0] >= 1000, `waits ${waits[0]} ms for ${firstBytes} bytes`);
});

Deno.test("show() outside a notebook prints each item's text/plain", async () => {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    await showWith(undefined, [new Svg("<svg/>", "LeNet: 9 layers")]);
    // Outside a kernel (here: deno test) reading Deno.jupyter throws; show() prints instead.
    await show(new Svg("<svg/>", "MLP: 3 layers"));
  } finally {
    console.log = log;
  }
  assert.deepEqual(lines, ["LeNet: 9 layers", "MLP: 3 layers"]);
});
