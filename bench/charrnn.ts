/**
 * The CharRNN benchmark (issue 4): the 512-hidden network of bench/charrnn_net.ts (sampleCharRNN's
 * dimensions, seeded weights) on the GPU, FP32, against PyTorch nn.LSTM (cuDNN) eager, CUDA-graph
 * replay and torch.compile (bench/peers/charrnn_torch.py), timed the same way in the same run:
 *
 *   (a) one step at batch 1, index + states in, TopK index + states out: device-resident back to
 *       back (CUDA events around each graph replay) and host → host (one execute per step);
 *   (b) GEN_STEPS generated characters, the argmax fed back on the device, indices collected on
 *       the device, one sync at the end (executeLoop; wall time per character);
 *   (c) one step at batch 64, device-resident: samples/s.
 *
 * Prints the table with ratios and Kiln's per-layer device times (profiled, gated runs).
 *
 *   deno run -A bench/charrnn.ts [--runs 200] [--no-peers]   (bench/run.ts runs it too)
 */
import { buildEngine, type Engine, Logger } from "../mod.ts";
import { readPlan } from "../plan/mod.ts";
import { createCudaBackend } from "../runtime/cuda/mod.ts";
import type { CudaBackend, CudaContext } from "../runtime/cuda/backend.ts";
import { CHARRNN_BENCH, charRnnBenchNet } from "./charrnn_net.ts";

const GEN_STEPS = 1000;
const WARMUP = 30;
const FEEDBACK = { next: "index", hiddenOut: "hiddenIn", cellOut: "cellIn" };

/** Targets of issue 4. */
const TARGETS = { step1_us: 32, gen_us_per_char: 13, step64_samples_per_s: 1.05e6 };

interface Measures {
  step1_dev_us?: number;
  step1_host_us?: number;
  gen_us_per_char?: number;
  step64_dev_us?: number;
  error?: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function stepInputs(batch: number) {
  const state = batch * CHARRNN_BENCH.layers * CHARRNN_BENCH.hidden;
  return {
    index: Int32Array.from({ length: batch }, (_, i) => (11 * i + 5) % CHARRNN_BENCH.vocab),
    hiddenIn: Float32Array.from({ length: state }, (_, i) => 0.5 * Math.sin(i)),
    cellIn: Float32Array.from({ length: state }, (_, i) => 0.5 * Math.cos(i)),
  };
}

function deviceUs(backend: CudaBackend, engine: Engine, batch: number, runs: number): number {
  const plan = readPlan(engine.serialize());
  using be = backend.load({ manifest: plan.manifest, weights: [], weightSection: plan.weights });
  using ctx = be.createContext() as CudaContext;
  ctx.deviceTimesMs(batch, WARMUP);
  return median(ctx.deviceTimesMs(batch, runs)) * 1000;
}

async function hostUs(engine: Engine, runs: number): Promise<number> {
  using ctx = engine.createContext();
  const x = stepInputs(1);
  for (let i = 0; i < WARMUP; i++) await ctx.execute(x);
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await ctx.execute(x);
    t.push(performance.now() - t0);
  }
  return median(t) * 1000;
}

async function generateUsPerChar(engine: Engine): Promise<number> {
  using ctx = engine.createContext();
  const x = stepInputs(1);
  const run = () => ctx.executeLoop(x, { steps: GEN_STEPS, feedback: FEEDBACK, collect: ["next"] });
  await run();
  const t: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await run();
    t.push(performance.now() - t0);
  }
  return (median(t) * 1000) / GEN_STEPS;
}

async function layerTimes(engine: Engine, batch: number): Promise<string> {
  using ctx = engine.createContext();
  ctx.profiler.enabled = true;
  const x = stepInputs(batch);
  for (let i = 0; i < 20; i++) await ctx.execute(x, { batchSize: batch });
  return ctx.profiler.report().map((l) => `${l.layer} ${(l.ms * 1000).toFixed(1)}`).join(", ");
}

async function runPeers(runs: number): Promise<
  { torch: string; device: string; variants: Record<string, Measures> } | string
> {
  const script = new URL("./peers/charrnn_torch.py", import.meta.url).pathname;
  try {
    const r = await new Deno.Command("python3", {
      args: [script, String(runs), String(GEN_STEPS)],
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

export async function runCharRnnBench(runs = 200, peersWanted = true): Promise<void> {
  const backend = await createCudaBackend(0) as CudaBackend;
  console.log(
    `\nCharRNN (2×LSTM 512, embedding 512, vocabulary 65), FP32, on ${backend.props.name}`,
  );
  using engine = await buildEngine(charRnnBenchNet(), {
    device: "cuda",
    maxBatchSize: 64,
    logger: new Logger("error"),
  });
  const kiln: Measures = {
    step1_dev_us: deviceUs(backend, engine, 1, runs),
    step1_host_us: await hostUs(engine, runs),
    gen_us_per_char: await generateUsPerChar(engine),
    step64_dev_us: deviceUs(backend, engine, 64, runs),
  };
  const profiles = { b1: await layerTimes(engine, 1), b64: await layerTimes(engine, 64) };
  const peers = peersWanted ? await runPeers(runs) : "skipped (--no-peers)";
  const columns: [string, Measures][] = [["kiln", kiln]];
  if (typeof peers !== "string") {
    console.log(`peers: PyTorch ${peers.torch} on ${peers.device}`);
    for (const [k, v] of Object.entries(peers.variants)) columns.push([k, v]);
  } else {
    console.log(`peers: ${peers}`);
  }
  const us = (v?: number) => (v === undefined ? "n/a" : `${v.toFixed(1)}µs`);
  const sps = (v?: number) => (v === undefined ? "n/a" : `${(64e6 / v / 1e6).toFixed(2)}M/s`);
  const best = (key: keyof Measures) =>
    Math.min(...columns.slice(1).map(([, m]) => (m[key] as number) ?? Infinity));
  const ratio = (key: keyof Measures) => {
    const b = best(key), k = kiln[key] as number | undefined;
    return k && Number.isFinite(b) ? `${(b / k).toFixed(2)}×` : "n/a";
  };
  const rows: string[][] = [
    ["measure", ...columns.map(([n]) => n), "best peer / kiln", "target", "met"],
    [
      "(a) step b1, device",
      ...columns.map(([, m]) => us(m.step1_dev_us)),
      ratio("step1_dev_us"),
      `≤ ${TARGETS.step1_us}µs`,
      String((kiln.step1_dev_us ?? Infinity) <= TARGETS.step1_us),
    ],
    [
      "(a) step b1, host→host",
      ...columns.map(([, m]) => us(m.step1_host_us)),
      ratio("step1_host_us"),
      `≤ ${TARGETS.step1_us}µs`,
      String((kiln.step1_host_us ?? Infinity) <= TARGETS.step1_us),
    ],
    [
      `(b) generate ${GEN_STEPS}, per char`,
      ...columns.map(([, m]) => us(m.gen_us_per_char)),
      ratio("gen_us_per_char"),
      `≤ ${TARGETS.gen_us_per_char}µs`,
      String((kiln.gen_us_per_char ?? Infinity) <= TARGETS.gen_us_per_char),
    ],
    [
      "(c) step b64, samples/s",
      ...columns.map(([, m]) => sps(m.step64_dev_us)),
      ratio("step64_dev_us"),
      `≥ ${(TARGETS.step64_samples_per_s / 1e6).toFixed(2)}M/s`,
      String(64e6 / (kiln.step64_dev_us ?? Infinity) >= TARGETS.step64_samples_per_s),
    ],
  ];
  for (const [name, m] of columns) if (m.error) console.log(`${name}: ${m.error}`);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  console.log("ratios > 1: Kiln is faster than the best PyTorch variant");
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i])).join(" | "));
  console.log("Kiln per-layer device times (µs, profiled gated runs):");
  console.log(`  b1: ${profiles.b1}\n  b64: ${profiles.b64}`);
}

if (import.meta.main) {
  const args = Deno.args;
  const i = args.indexOf("--runs");
  await runCharRnnBench(i >= 0 ? Number(args[i + 1]) : 200, !args.includes("--no-peers"));
}
