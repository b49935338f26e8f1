import { JUPYTER_DISPLAY } from "../../viz/_jupyter.ts";
import assert from "node:assert/strict";
import { buildEngine } from "../../builder/build.ts";
import { N } from "../../dsl/ir/dims.ts";
import { Network } from "../../dsl/network.ts";
import { Logger } from "../../runtime/logger.ts";
import { histogramFigure, profileFigure } from "../../viz/figures.ts";
import { display } from "../../viz/display.ts";
import { toHtml } from "../../viz/html.ts";
import { drawNetwork, viewOfEngine, viewOfNetwork } from "../../viz/network.ts";
import { randomArray, rng } from "../_util.ts";

async function smallNet() {
  const r = rng(5);
  const net = new Network();
  const y = net.input("data", [N, 1, 8, 8])
    .conv({
      name: "conv1",
      outputs: 4,
      kernel: 3,
      weights: randomArray(36, r),
      bias: randomArray(4, r),
    })
    .relu()
    .maxPool({ window: 2 })
    .fc({ name: "ip1", outputs: 3, weights: randomArray(3 * 36, r) })
    .softmax();
  net.markOutput(y, "prob");
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 2,
    logger: new Logger("error"),
  });
  return { net, engine };
}

Deno.test("profileFigure sorts layers by time and labels fused layers with their sources", async () => {
  const { engine } = await smallNet();
  const ctx = engine.createContext();
  ctx.profiler.enabled = true;
  for (let i = 0; i < 3; i++) await ctx.execute({ data: randomArray(64, rng(i)) });
  const fig = profileFigure(ctx.profiler.report());
  const bar = fig.data[0] as { x: number[]; y: string[]; hovertext: string[] };
  assert.equal(bar.y.length, engine.layers.length);
  for (let i = 1; i < bar.x.length; i++) {
    assert.ok(bar.x[i - 1] <= bar.x[i], "ascending, slowest drawn on top");
  }
  const fused = bar.hovertext.find((h) => h.includes("2 fused"));
  assert.ok(fused?.includes("conv1") && fused.includes("activation"), `fused label: ${fused}`);
});

Deno.test("display() gives a MIME bundle with plotly JSON, HTML that draws it, and plain text", () => {
  const fig = histogramFigure({ edges: [0, 1, 2, 3], counts: [10, 100, 1] }, { threshold: 1.5 });
  const bundle = display(fig)[JUPYTER_DISPLAY]() as Record<string, unknown>;
  assert.deepEqual(
    (bundle["application/vnd.plotly.v1+json"] as { layout: { yaxis: { type: string } } }).layout
      .yaxis.type,
    "log",
  );
  const html = bundle["text/html"] as string;
  assert.match(html, /Plotly\.newPlot/);
  assert.ok(html.length > 1_000_000, "plotly.js is inlined the first time");
  const again = display(fig)[JUPYTER_DISPLAY]() as Record<string, string>;
  assert.ok(again["text/html"].length < 10_000, "and not again");
  assert.match(bundle["text/plain"] as string, /Activation histogram/);
});

Deno.test("drawNetwork renders before/after-pass drawings to SVG with kinds, shapes and fused sources", async () => {
  const { net, engine } = await smallNet();
  const svg = await drawNetwork([
    viewOfNetwork(net, "as defined"),
    viewOfEngine(engine.describe(), "optimized"),
  ]);
  assert.match(svg.svg, /^<\?xml|<svg/);
  for (const s of ["Convolution", "conv1", "fuses conv1", "[N,4,6,6]", "as defined", "optimized"]) {
    assert.ok(svg.svg.includes(s.replace(/&/g, "&amp;")), `SVG mentions ${s}`);
  }
  const bundle = svg[JUPYTER_DISPLAY]();
  assert.ok(bundle["image/svg+xml"].includes("<svg"));
});

Deno.test("toHtml writes a standalone page atomically", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/profile.html`;
  const html = await toHtml(
    profileFigure([{ layer: "a", kind: "Activation", sources: ["a"], ms: 1 }]),
    path,
  );
  assert.equal(await Deno.readTextFile(path), html);
  assert.match(html, /<!DOCTYPE html>/);
  assert.ok(
    !/<script[^>]*\ssrc=/i.test(html) && !/<link\b/i.test(html),
    "nothing loaded from elsewhere",
  );
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["profile.html"]);
  await Deno.remove(dir, { recursive: true });
});
