/**
 * The HTML exports in a real browser. A per-layer profile and a before/after-passes drawing of
 * LeNet (MNIST's network, built with the DSL) are written with toHtml and opened in headless
 * Chromium (Debian's `chromium`) with no network at all: the DOM must hold what plotly and
 * Graphviz drew, and the screenshot must show it (decoded here: the bar and node colours, not a
 * blank page).
 *
 * The screenshots in docs/img/ (shown in the README) are the ones this test takes; to refresh
 * them: KILN_SAVE_PICTURES=docs/img deno test -A tests/viz/browser_test.ts
 */
import assert from "node:assert/strict";
import { buildEngine } from "../../builder/build.ts";
import { N } from "../../dsl/ir/dims.ts";
import { Network } from "../../dsl/network.ts";
import { Logger } from "../../runtime/logger.ts";
import { profileFigure } from "../../viz/figures.ts";
import { toHtml } from "../../viz/html.ts";
import { drawNetwork, viewOfEngine, viewOfNetwork } from "../../viz/network.ts";
import { colourStats, decodePng, type RgbaImage } from "../_png.ts";
import { randomArray, rng } from "../_util.ts";

const CHROMIUM_NAMES = ["chromium", "chromium-browser", "google-chrome"];

function findChromium(): string {
  const path = Deno.env.get("PATH") ?? "";
  for (const name of CHROMIUM_NAMES) {
    for (const dir of path.split(":")) {
      try {
        if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
      } catch { /* not here */ }
    }
  }
  throw new Error(
    `no Chromium on PATH (looked for ${CHROMIUM_NAMES.join(", ")}): the browser test needs ` +
      "Debian's chromium. `bash scripts/test.sh` installs it when run as root or with " +
      "passwordless sudo; otherwise `apt-get install chromium`.",
  );
}

/** Runs headless Chromium on a local page with a fresh profile, offline; returns stdout. */
async function chromium(url: string, extra: string[]): Promise<string> {
  const profile = await Deno.makeTempDir({ prefix: "kiln-chromium-" });
  try {
    const out = await new Deno.Command(findChromium(), {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        // No name resolves: nothing can be fetched from elsewhere, so the page must be standalone.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        `--user-data-dir=${profile}`,
        // Scripts run and plotly draws before the DOM is dumped or the screenshot taken.
        "--virtual-time-budget=10000",
        ...extra,
        url,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { HOME: profile },
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    if (!out.success) {
      throw new Error(
        `chromium exited with ${out.code}:\n${new TextDecoder().decode(out.stderr).slice(-2000)}`,
      );
    }
    return stdout;
  } finally {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

async function screenshot(page: string, png: string, size: [number, number]) {
  await chromium(`file://${page}`, [`--screenshot=${png}`, `--window-size=${size.join(",")}`]);
  return await decodePng(await Deno.readFile(png));
}

/** LeNet as sampleMNIST's prototxt has it, with random weights (the timings do not care). */
async function lenet() {
  const r = rng(1998);
  const net = new Network();
  const ip1 = net.input("data", [N, 1, 28, 28])
    .scale({ name: "scale", scale: [0.0125] })
    .conv({
      name: "conv1",
      outputs: 20,
      kernel: 5,
      weights: randomArray(20 * 25, r),
      bias: randomArray(20, r),
    })
    .maxPool({ name: "pool1", window: 2 })
    .conv({
      name: "conv2",
      outputs: 50,
      kernel: 5,
      weights: randomArray(50 * 20 * 25, r, -0.1, 0.1),
      bias: randomArray(50, r),
    })
    .maxPool({ name: "pool2", window: 2 })
    .fc({
      name: "ip1",
      outputs: 500,
      weights: randomArray(500 * 800, r, -0.05, 0.05),
      bias: randomArray(500, r),
    });
  const relu1 = net.addActivation(ip1, { name: "relu1", type: "relu" }).output(0);
  const ip2 = relu1.fc({
    name: "ip2",
    outputs: 10,
    weights: randomArray(5000, r),
    bias: randomArray(10, r),
  });
  const prob = net.addSoftMax(ip2, { name: "prob" }).output(0);
  net.markOutput(prob, "prob");
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 8,
    logger: new Logger("error"),
  });
  return { net, engine };
}

async function saveCopy(png: string, name: string) {
  const dir = Deno.env.get("KILN_SAVE_PICTURES");
  if (!dir) return;
  const tmp = `${dir}/${name}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  await Deno.copyFile(png, tmp);
  await Deno.rename(tmp, `${dir}/${name}`);
  console.log(`saved ${dir}/${name}`);
}

function assertNotBlank(img: RgbaImage, what: string) {
  const s = colourStats(img);
  assert.ok(s.distinct >= 16, `${what}: only ${s.distinct} distinct colours`);
  assert.ok(
    s.nonWhiteFraction > 0.02 && s.nonWhiteFraction < 0.9,
    `${what}: ${(100 * s.nonWhiteFraction).toFixed(1)}% of the pixels are not white`,
  );
  return s;
}

Deno.test("the PNG decoder undoes all five row filters (RGB and RGBA)", async () => {
  const r = rng(3);
  for (const channels of [3, 4]) {
    const [w, h] = [13, 10];
    const px = Uint8Array.from({ length: w * h * channels }, () => Math.floor(256 * r()));
    const stride = w * channels;
    // Filter row y with type y % 5, the encoder's side of the PNG spec written out directly.
    const raw = new Uint8Array(h * (stride + 1));
    for (let y = 0; y < h; y++) {
      const f = y % 5;
      raw[y * (stride + 1)] = f;
      for (let x = 0; x < stride; x++) {
        const at = (yy: number, xx: number) => yy < 0 || xx < 0 ? 0 : px[yy * stride + xx];
        const a = at(y, x - channels), b = at(y - 1, x), c = at(y - 1, x - channels);
        const p = a + b - c;
        const pred = [
          0,
          a,
          b,
          Math.floor((a + b) / 2),
          Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c)
            ? a
            : Math.abs(p - b) <= Math.abs(p - c)
            ? b
            : c,
        ][f];
        raw[y * (stride + 1) + 1 + x] = (px[y * stride + x] - pred + 256) % 256;
      }
    }
    const z = new Uint8Array(
      await new Response(
        new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate")),
      ).arrayBuffer(),
    );
    const chunk = (type: string, body: Uint8Array) => {
      const c = new Uint8Array(12 + body.length);
      new DataView(c.buffer).setUint32(0, body.length);
      c.set([...type].map((ch) => ch.charCodeAt(0)), 4);
      c.set(body, 8);
      return c; // CRC left zero: the decoder does not check it
    };
    const ihdr = new Uint8Array(13);
    new DataView(ihdr.buffer).setUint32(0, w);
    new DataView(ihdr.buffer).setUint32(4, h);
    ihdr.set([8, channels === 4 ? 6 : 2, 0, 0, 0], 8);
    const parts = [
      Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a),
      chunk("IHDR", ihdr),
      chunk("IDAT", z.subarray(0, 20)),
      chunk("IDAT", z.subarray(20)),
      chunk("IEND", new Uint8Array(0)),
    ];
    const png = new Uint8Array(await new Blob(parts).arrayBuffer());
    const img = await decodePng(png);
    assert.deepEqual([img.width, img.height], [w, h]);
    for (let i = 0; i < w * h; i++) {
      const want = [
        ...px.subarray(i * channels, i * channels + 3),
        channels === 4 ? px[i * 4 + 3] : 255,
      ];
      assert.deepEqual([...img.rgba.subarray(i * 4, i * 4 + 4)], want, `pixel ${i}`);
    }
  }
  await assert.rejects(decodePng(new Uint8Array(20)), /not a PNG/);
});

Deno.test("Chromium draws the profile export (plotly SVG in the DOM, bars on the screenshot) and the network drawing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln-browser-" });
  try {
    const { net, engine } = await lenet();
    using ctx = engine.createContext();
    ctx.profiler.enabled = true;
    const input = randomArray(8 * 784, rng(7), 0, 255);
    for (let i = 0; i < 20; i++) await ctx.execute({ data: input });
    const times = ctx.profiler.report();
    const fused = times.filter((t) => t.sources.length > 1);
    assert.ok(fused.length > 0, "the builder fused something (drawn in the second colour)");

    // The profile: plotly.js inlined, run in the page, drawing one bar per layer.
    const profileHtml = `${dir}/profile.html`;
    const fig = profileFigure(times, "LeNet (MNIST) on the CPU, batch 8");
    await toHtml(fig, profileHtml);
    const dom = await chromium(`file://${profileHtml}`, ["--dump-dom"]);
    assert.match(dom, /class="main-svg"/, "plotly drew its SVG");
    const bars = dom.match(/<g class="point">/g) ?? [];
    assert.equal(bars.length, times.length, "one bar per layer");
    for (const t of times) assert.ok(dom.includes(`>${t.layer}<`), `axis label ${t.layer}`);

    const profilePng = `${dir}/profile.png`;
    const size: [number, number] = [1200, (fig.layout.height as number) + 32];
    const shot = await screenshot(profileHtml, profilePng, size);
    assert.deepEqual([shot.width, shot.height], size);
    const s = assertNotBlank(shot, "profile screenshot");
    // The bars' colours from figures.ts: plain layers and fused ones.
    assert.ok(s.count("#29335c") > 2000, `plain-layer bars: ${s.count("#29335c")} pixels`);
    assert.ok(s.count("#e4572e") > 2000, `fused-layer bars: ${s.count("#e4572e")} pixels`);
    await saveCopy(profilePng, "profile.png");

    // The drawing: Graphviz SVG of the network as defined and after the passes, side by side.
    const svg = await drawNetwork([
      viewOfNetwork(net, "LeNet as defined"),
      viewOfEngine(engine.describe(), "after the builder's passes"),
    ]);
    const networkHtml = `${dir}/network.html`;
    await toHtml(svg, networkHtml);
    const ndom = await chromium(`file://${networkHtml}`, ["--dump-dom"]);
    assert.match(ndom, /<svg[^>]*>/);
    assert.match(ndom, /class="graph"/, "Graphviz's SVG is in the page");
    for (const l of ["conv1", "ip1", "after the builder's passes"]) {
      assert.ok(ndom.includes(l.replace(/'/g, "&#39;")) || ndom.includes(l), `drawing names ${l}`);
    }
    const networkPng = `${dir}/network.png`;
    // The window fits the whole drawing (Graphviz sizes it in points; the page has 16px margins).
    const [w, h] = [...svg.svg.matchAll(/<svg width="(\d+)pt" height="(\d+)pt"/g)][0].slice(1)
      .map((pt) => Math.ceil((Number(pt) * 4) / 3) + 32);
    const nshot = await screenshot(networkHtml, networkPng, [w, h]);
    const ns = assertNotBlank(nshot, "network screenshot");
    // Node headers from network.ts: plain layers and fused ones.
    assert.ok(ns.count("#dde3f5") > 500, `plain-layer nodes: ${ns.count("#dde3f5")} pixels`);
    assert.ok(ns.count("#fde2d8") > 200, `fused-layer nodes: ${ns.count("#fde2d8")} pixels`);
    await saveCopy(networkPng, "network.png");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
