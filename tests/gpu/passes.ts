/**
 * The view-making passes on the GPU (builder/passes/fuse_horizontal.ts, elide_concat.ts): the
 * same network with every pass built for the GPU (activations poisoned with NaN, so a slice a
 * kernel fails to write shows) and for the CPU, compared at several batch sizes of the symbolic
 * batch; the GPU plans must really hold views. GoogLeNet (random weights) when its deploy file
 * is at hand, with its run time with and without the two passes as the detail line.
 */
import { buildEngine } from "../../builder/build.ts";
import { N } from "../../dsl/ir/dims.ts";
import type { Tensor } from "../../dsl/ir/graph.ts";
import { Network } from "../../dsl/network.ts";
import { parseCaffe } from "../../parsers/caffe/mod.ts";
import { readPlan } from "../../plan/mod.ts";
import { isNoOpLayer } from "../../plan/views.ts";
import type { Engine } from "../../runtime/engine.ts";
import { randomArray, rng } from "../_util.ts";
import { enginePair, type GpuTest, maxRelativeError, quiet, worstAt } from "./_harness.ts";
import { Skip } from "./examples.ts";

const TOLERANCE = 1e-4;
/**
 * Default kernels only (no tactic timing; spread so that the option is not required of a
 * BuildConfig that predates it): keeps GoogLeNet's builds short.
 */
const NO_TUNING = { tactics: "none" } as const;

function convRelu(x: Tensor, inC: number, outputs: number, kernel: number, r: () => number) {
  return x.conv({
    outputs,
    kernel,
    padding: (kernel - 1) / 2,
    weights: randomArray(outputs * inC * kernel * kernel, r, -0.5, 0.5),
    bias: randomArray(outputs, r),
  }).relu();
}

/** GoogLeNet's inception block in small, with a head after the concatenation. */
function inceptionNet(r: () => number): Network {
  const net = new Network();
  const x = net.input("x", [N, 16, 7, 9]);
  const one = convRelu(x, 16, 8, 1, r);
  const three = convRelu(convRelu(x, 16, 12, 1, r), 12, 16, 3, r);
  const five = convRelu(convRelu(x, 16, 4, 1, r), 4, 8, 5, r);
  const proj = convRelu(x.maxPool({ window: 3, stride: 1, padding: 1 }), 16, 8, 1, r);
  const cat = one.concat([three, five, proj], { axis: 1 });
  net.markOutput(convRelu(cat, 40, 6, 1, r), "y");
  net.markOutput(cat.avgPool({ window: 7 }), "pooled");
  return net;
}

/** Inception-v3's reduction: max pool and strided convolutions concatenated. */
function reductionNet(r: () => number): Network {
  const net = new Network();
  const x = net.input("x", [N, 8, 11, 11]);
  const pool = x.maxPool({ window: 3, stride: 2 });
  const conv = x.conv({
    outputs: 12,
    kernel: 3,
    stride: 2,
    weights: randomArray(12 * 8 * 9, r, -0.5, 0.5),
    bias: randomArray(12, r),
    activation: { type: "relu" },
  });
  const avg = x.avgPool({ window: 3, stride: 2 });
  net.markOutput(pool.concat([conv, avg], { axis: 1 }).sigmoid(), "y");
  return net;
}

function planViews(e: Engine): { views: number; noOps: number } {
  const m = readPlan(e.serialize()).manifest;
  return {
    views: m.tensors.filter((t) => t.view).length,
    noOps: m.layers.filter((l) => isNoOpLayer(l, m.tensors)).length,
  };
}

/** GPU vs CPU with every pass, at each batch; returns the worst error and the plan's views. */
async function compare(
  net: Network,
  input: string,
  perItem: number,
  batches: number[],
  seed: number,
  tune = true,
): Promise<string> {
  const maxBatchSize = Math.max(...batches);
  const { cpu, gpu } = await enginePair(net, { maxBatchSize, ...(tune ? {} : NO_TUNING) });
  using _cpu = cpu;
  using _gpu = gpu;
  const { views, noOps } = planViews(gpu);
  if (views === 0 || noOps === 0) {
    throw new Error(`the GPU plan has ${views} views, ${noOps} no-ops`);
  }
  using c = cpu.createContext();
  using g = gpu.createContext();
  const r = rng(seed);
  let worst = 0;
  for (const batch of batches) {
    const x = { [input]: randomArray(batch * perItem, r) };
    const want = await c.execute(x, { batchSize: batch });
    const got = await g.execute(x, { batchSize: batch });
    for (const k of Object.keys(want)) {
      const e = maxRelativeError(got[k], want[k]);
      if (!(e <= TOLERANCE)) {
        throw new Error(`${k} at batch ${batch}: error ${e} (${worstAt(got[k], want[k])})`);
      }
      worst = Math.max(worst, e);
    }
  }
  return `${views} views, ${noOps} no-op layers, worst error ${worst.toExponential(1)}`;
}

function googlenetDeploy(): string {
  const candidates = [
    `${Deno.env.get("KILN_GPU_DATA") ?? ".gpu-data"}/caffe/bvlc_googlenet/deploy.prototxt`,
    new URL("../../../shared/data/caffe/bvlc_googlenet/deploy.prototxt", import.meta.url).pathname,
  ];
  for (const c of candidates) {
    try {
      if (Deno.statSync(c).isFile) return c;
    } catch {
      // try the next place
    }
  }
  throw new Skip("caffe/bvlc_googlenet/deploy.prototxt is not at hand");
}

async function googlenet(): Promise<Network> {
  const { network, blobs } = await parseCaffe({ deploy: googlenetDeploy() });
  const r = rng(47);
  for (const l of network.layers) {
    const w = l.weights.get("weights");
    if (!w) continue;
    const fanIn = w.values.length / (l.attrs.outputs as number);
    const scale = 1.7 / Math.sqrt(fanIn);
    l.setWeights("weights", randomArray(w.values.length, r).map((v) => v * scale));
    const b = l.weights.get("bias");
    if (b) l.setWeights("bias", randomArray(b.values.length, r, -0.1, 0.1));
  }
  network.markOutput(blobs.get("loss3/classifier"), "logits");
  network.markOutput(blobs.get("prob"), "prob");
  return network as Network;
}

/** Mean wall milliseconds of `runs` executes at `batch` (after a warm-up). */
async function meanMs(e: Engine, batch: number, runs: number): Promise<number> {
  using ctx = e.createContext();
  const x = { data: randomArray(batch * 3 * 224 * 224, rng(5)) };
  await ctx.execute(x);
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await ctx.execute(x);
  return (performance.now() - t0) / runs;
}

export function passTests(): GpuTest[] {
  return [
    {
      name:
        "passes: inception block (tactics timed) with horizontal fusion and concat elision, GPU vs CPU at batch 1, 3, 4",
      fn: () => compare(inceptionNet(rng(41)), "x", 16 * 63, [1, 3, 4], 42),
    },
    {
      name:
        "passes: pooling and strided convolution write their concat slices, GPU vs CPU at batch 1, 3",
      fn: () => compare(reductionNet(rng(43)), "x", 8 * 121, [1, 3], 44, false),
    },
    {
      name:
        "passes: GoogLeNet (random weights) GPU vs CPU at batch 1, 2; time with and without the two passes",
      async fn() {
        const net = await googlenet();
        const detail = await compare(net, "data", 3 * 224 * 224, [1, 2], 45, false);
        const config = { device: "cuda", maxBatchSize: 8, logger: quiet, ...NO_TUNING } as const;
        using on = await buildEngine(net, config);
        using off = await buildEngine(net, {
          ...config,
          disablePasses: ["fuseHorizontal", "elideConcat"],
        });
        const parts: string[] = [];
        for (const b of [1, 8]) {
          const ms = await meanMs(on, b, 50), msOff = await meanMs(off, b, 50);
          parts.push(`b${b} ${ms.toFixed(3)} ms vs ${msOff.toFixed(3)} ms without`);
        }
        return `${detail}; ${parts.join(", ")}; activations ${
          (on.memory.activationBytes / 2 ** 20).toFixed(1)
        } MiB vs ${(off.memory.activationBytes / 2 ** 20).toFixed(1)} MiB at batch 8`;
      },
    },
  ];
}
