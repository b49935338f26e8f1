/**
 * The reduced-precision benchmark (issue 7) on the GPU: the Caffe LeNet (caffe/mnist) at batch 256
 * and BVLC GoogLeNet (Caffe deploy.prototxt, the parser's seeded random weights) at batch 128,
 * each built in FP32, FP16 and INT8 (the CUDA cost model choosing per layer), timed as device
 * time per run (CUDA-graph replay back to back, median), with the time per precision from the
 * profiler (summed as viz/precision.ts's timeByPrecision) and the layer counts, against PyTorch FP16 CUDA-graph
 * replay of the same shapes (bench/peers/precision_torch.py).
 *
 * INT8 scales: MinMax calibration on the CPU over seeded random inputs (these weights are
 * random too: the INT8 rows time the kernels; accuracy is tests/gpu/precision.ts's LeNet on MNIST).
 *
 *   deno run -A bench/precision.ts [--runs 50] [--data DIR] [--no-peers] [--no-googlenet]
 */
import { type BuildConfig, buildEngine } from "../builder/build.ts";
import { ArrayBatchStream } from "../builder/quant/batch_stream.ts";
import { MinMaxCalibrator } from "../builder/quant/calibrator.ts";
import type { Network } from "../dsl/network.ts";
import { parseCaffe } from "../parsers/caffe/mod.ts";
import type { Engine } from "../runtime/engine.ts";
import { Logger } from "../runtime/logger.ts";
import { readPlan } from "../plan/mod.ts";
import type { CudaBackend, CudaContext } from "../runtime/cuda/backend.ts";
import { createCudaBackend } from "../runtime/cuda/mod.ts";

const args = Deno.args;
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const RUNS = Number(flag("--runs") ?? 50);
const WARMUP = 10;
const quiet = new Logger("error");

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function seededInput(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

function dataDir(): string | undefined {
  for (
    const d of [
      flag("--data"),
      Deno.env.get("KILN_GPU_DATA"),
      new URL("../.gpu-data", import.meta.url).pathname,
      new URL("../../shared/data", import.meta.url).pathname,
    ]
  ) {
    if (!d) continue;
    try {
      Deno.statSync(`${d}/caffe/bvlc_googlenet/deploy.prototxt`);
      Deno.statSync(`${d}/caffe/mnist/mnist.caffemodel`);
      return d;
    } catch {
      // next
    }
  }
  return undefined;
}

interface Row {
  workload: string;
  precision: string;
  batch: number;
  us: number;
  imagesPerS: number;
  layers: string;
  split: string;
  buildS: number;
}

function deviceUs(backend: CudaBackend, engine: Engine, batch: number): number {
  const plan = readPlan(engine.serialize());
  using be = backend.load({ manifest: plan.manifest, weights: [], weightSection: plan.weights });
  using ctx = be.createContext() as CudaContext;
  ctx.deviceTimesMs(batch, WARMUP);
  return median(ctx.deviceTimesMs(batch, RUNS)) * 1000;
}

async function split(engine: Engine, input: string, x: Float32Array): Promise<string> {
  using ctx = engine.createContext();
  ctx.profiler.enabled = true;
  for (let i = 0; i < 5; i++) await ctx.execute({ [input]: x });
  // As viz/precision.ts's timeByPrecision (not imported: it would bring the plotting packages).
  const precisionOf = new Map(engine.describe().layers.map((l) => [l.name, l.precision]));
  const sums = new Map<string, number>();
  for (const t of ctx.profiler.report()) {
    const p = t.kind === "Reformat" ? "reformat" : precisionOf.get(t.layer) ?? "fp32";
    sums.set(p, (sums.get(p) ?? 0) + t.ms);
  }
  const total = [...sums.values()].reduce((a, b) => a + b, 0);
  return [...sums].map(([p, ms]) => `${p} ${(100 * ms / total).toFixed(0)}%`).join(" ");
}

function layerCounts(engine: Engine): string {
  const c: Record<string, number> = {};
  for (const l of engine.describe().layers) {
    const k = l.kind === "Reformat" ? "reformat" : l.precision;
    c[k] = (c[k] ?? 0) + 1;
  }
  return Object.entries(c).map(([k, v]) => `${v} ${k}`).join(", ");
}

async function measure(
  backend: CudaBackend,
  workload: string,
  make: () => Promise<Network>,
  input: string,
  itemShape: number[],
  batch: number,
): Promise<Row[]> {
  const item = itemShape.reduce((a, b) => a * b, 1);
  const x = seededInput(batch * item);
  const calibration = seededInput(4 * item, 7);
  // One timing cache for the three builds (a new file: the tuner refuses to overwrite others).
  const cacheDir = await Deno.makeTempDir();
  const timingCache = `${cacheDir}/timing.json`;
  const configs: [string, BuildConfig][] = [
    ["fp32", {}],
    ["fp16", { fp16: true }],
    ["int8", {
      int8: true,
      fp16: true,
      calibrator: new MinMaxCalibrator(
        new ArrayBatchStream({ [input]: calibration }, { batchSize: 4, count: 4 }),
      ),
    }],
  ];
  const rows: Row[] = [];
  for (const [precision, config] of configs) {
    const t0 = performance.now();
    using engine = await buildEngine(await make(), {
      device: "cuda",
      maxBatchSize: batch,
      logger: quiet,
      timingCache,
      ...config,
    });
    const buildS = (performance.now() - t0) / 1000;
    const us = deviceUs(backend, engine, batch);
    const row: Row = {
      workload,
      precision: precision === "int8" ? "int8+fp16" : precision,
      batch,
      us,
      imagesPerS: (batch / us) * 1e6,
      layers: layerCounts(engine),
      split: await split(engine, input, x),
      buildS,
    };
    console.log(
      `${workload} b${batch} ${row.precision}: ${us.toFixed(1)} µs/run, ${
        Math.round(row.imagesPerS).toLocaleString("en-US")
      } images/s (layers: ${row.layers}; time: ${row.split}; build ${buildS.toFixed(1)} s)`,
    );
    rows.push(row);
  }
  await Deno.remove(cacheDir, { recursive: true }).catch(() => {});
  return rows;
}

async function peers(googlenet: boolean): Promise<Record<string, number> | string> {
  const script = new URL("./peers/precision_torch.py", import.meta.url).pathname;
  try {
    const r = await new Deno.Command("python3", {
      args: [script, ...(googlenet ? [] : ["--no-googlenet"])],
      env: { PYTHONUNBUFFERED: "1" },
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!r.success) return `python3 exited with ${r.code}`;
    return JSON.parse(new TextDecoder().decode(r.stdout).trim().split("\n").at(-1)!);
  } catch (e) {
    return `peers unavailable: ${(e as Error).message}`;
  }
}

export async function runPrecisionBench(): Promise<Row[]> {
  const backend = await createCudaBackend(0) as CudaBackend;
  const data = dataDir();
  const rows: Row[] = [];
  if (data) {
    const lenet = async () => {
      const { network, blobs } = await parseCaffe({
        deploy: `${data}/caffe/mnist/mnist.prototxt`,
        model: `${data}/caffe/mnist/mnist.caffemodel`,
      });
      network.markOutput(blobs.get("prob")!);
      return network;
    };
    rows.push(...await measure(backend, "LeNet", lenet, "data", [1, 28, 28], 256));
  }
  const dir = args.includes("--no-googlenet") ? undefined : data;
  if (dir) {
    const googlenet = async () => {
      const { network, blobs } = await parseCaffe({
        deploy: `${dir}/caffe/bvlc_googlenet/deploy.prototxt`,
      });
      network.markOutput(blobs.get("prob")!);
      return network;
    };
    rows.push(...await measure(backend, "GoogLeNet", googlenet, "data", [3, 224, 224], 128));
  } else {
    console.log("GoogLeNet skipped (no deploy.prototxt found or --no-googlenet)");
  }
  if (!args.includes("--no-peers")) {
    const p = await peers(dir !== undefined);
    if (typeof p === "string") console.log(`PyTorch FP16 peers: ${p}`);
    else {
      for (const [name, us] of Object.entries(p)) {
        if (typeof us !== "number") continue;
        const batch = name.includes("b256") ? 256 : 128;
        console.log(
          `PyTorch ${name}: ${us.toFixed(1)} µs/run, ${
            Math.round((batch / us) * 1e6).toLocaleString("en-US")
          } images/s`,
        );
      }
    }
  }
  return rows;
}

if (import.meta.main) await runPrecisionBench();
