/**
 * Kiln against the PyTorch a user would pick instead (eager, CUDA-graph replay, torch.compile),
 * in one run on one GPU, printed as one table with ratios (`deno task bench`).
 *
 * Workloads: sampleMNIST's LeNet at batch 1 (latency) and 256 (throughput), sampleMLP at batch 1
 * and 1024, and execute() of a one-element identity network (the FFI + runtime overhead).
 * Every variant is timed the same two ways, each the median of RUNS timed runs after warm-up on
 * random non-zero inputs: host input → host output (one call per timed run), and device-resident
 * back-to-back (CUDA events around each run, no host sync between runs). FP32, no TF32.
 *
 *   deno run -A bench/run.ts [--runs 200] [--json results.json] [--no-peers]
 */
import { buildEngine, type Engine, type HostArray, Logger, type Network } from "../mod.ts";
import { readPlan } from "../plan/mod.ts";
import { createCudaBackend } from "../runtime/cuda/mod.ts";
import type { CudaBackend, CudaContext } from "../runtime/cuda/backend.ts";
import {
  identityNet,
  lenet,
  lenetWeights,
  mlp,
  MLP_SIZES,
  mlpWeights,
  seeded,
} from "./networks.ts";

const args = Deno.args;
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const RUNS = Number(flag("--runs") ?? 200);
const WARMUP = 50;
const quiet = new Logger("error");

interface Workload {
  name: string;
  model: "lenet" | "mlp";
  batch: number;
  /** Report items/s instead of µs. */
  throughput: boolean;
  shape: number[];
}

const WORKLOADS: Workload[] = [
  { name: "LeNet b1", model: "lenet", batch: 1, throughput: false, shape: [1, 1, 28, 28] },
  { name: "LeNet b256", model: "lenet", batch: 256, throughput: true, shape: [256, 1, 28, 28] },
  { name: "MLP b1", model: "mlp", batch: 1, throughput: false, shape: [1, 784] },
  { name: "MLP b1024", model: "mlp", batch: 1024, throughput: true, shape: [1024, 784] },
];

interface Timing {
  host_us?: number;
  device_us?: number;
  error?: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function randomInput(n: number, seed: number): Float32Array {
  const r = seeded(seed);
  return Float32Array.from({ length: n }, () => r() || 0.5);
}

async function timeHost(engine: Engine, input: string, x: Float32Array): Promise<number> {
  using ctx = engine.createContext();
  for (let i = 0; i < WARMUP; i++) await ctx.execute({ [input]: x });
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await ctx.execute({ [input]: x });
    samples.push(performance.now() - t0);
  }
  return median(samples) * 1000;
}

/** Device-resident timing through the backend's own context over the engine's plan. */
function timeDevice(backend: CudaBackend, engine: Engine, batch: number): number {
  const plan = readPlan(engine.serialize());
  using be = backend.load({ manifest: plan.manifest, weights: [], weightSection: plan.weights });
  using ctx = be.createContext() as CudaContext;
  ctx.deviceTimesMs(batch, WARMUP);
  return median(ctx.deviceTimesMs(batch, RUNS)) * 1000;
}

async function profile(engine: Engine, input: string, x: Float32Array): Promise<string> {
  using ctx = engine.createContext();
  ctx.profiler.enabled = true;
  for (let i = 0; i < 20; i++) await ctx.execute({ [input]: x });
  return ctx.profiler.report().map((l) => `${l.layer} ${(l.ms * 1000).toFixed(1)}`).join(", ");
}

function writeF32(dir: string, name: string, a: Float32Array): void {
  Deno.writeFileSync(`${dir}/${name}.f32`, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

async function runPeers(dir: string): Promise<Record<string, Record<string, Timing>> | string> {
  const script = new URL("./peers/torch_peers.py", import.meta.url).pathname;
  try {
    const r = await new Deno.Command("python3", {
      args: [script, dir],
      env: { PYTHONUNBUFFERED: "1" },
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const text = new TextDecoder().decode(r.stdout).trim();
    if (!r.success) return `python3 exited with ${r.code}`;
    const parsed = JSON.parse(text.split("\n").at(-1)!);
    console.log(`peers: PyTorch ${parsed.torch} on ${parsed.device}`);
    return parsed.workloads;
  } catch (e) {
    return `peers unavailable: ${(e as Error).message}`;
  }
}

/** Normwise: max |a - b| over max |b| (as the GPU suite compares). */
function maxRelErr(a: Float32Array, b: Float32Array): number {
  let scale = 0, worst = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
  }
  return worst / scale;
}

async function main() {
  const backend = await createCudaBackend(0) as CudaBackend;
  console.log(`device: ${backend.props.name} (${backend.props.arch}), ${RUNS} timed runs each`);
  const dir = Deno.makeTempDirSync({ prefix: "kiln-bench-" });
  const lw = lenetWeights(), mw = mlpWeights();
  for (const [k, v] of Object.entries(lw)) writeF32(dir, `lenet.${k}`, v);
  mw.w.forEach((w, i) => writeF32(dir, `mlp.w${i}`, w));
  mw.b.forEach((b, i) => writeF32(dir, `mlp.b${i}`, b));

  const nets: Record<string, () => Network> = { lenet: () => lenet(lw), mlp: () => mlp(mw) };
  const inputName = { lenet: "data", mlp: "input" };
  const kiln: Record<string, Timing> = {};
  const outputs: Record<string, HostArray> = {};
  const profiles: Record<string, string> = {};
  const inputs: Record<string, Float32Array> = {};
  for (const w of WORKLOADS) {
    const x = randomInput(w.shape.reduce((a, b) => a * b, 1), w.batch);
    inputs[w.name] = x;
    writeF32(dir, `${w.name}.in`, x);
    using engine = await buildEngine(nets[w.model](), {
      device: "cuda",
      maxBatchSize: w.batch,
      logger: quiet,
    });
    {
      using ctx = engine.createContext();
      outputs[w.name] = Object.values(await ctx.execute({ [inputName[w.model]]: x }))[0];
    }
    kiln[w.name] = {
      host_us: await timeHost(engine, inputName[w.model], x),
      device_us: timeDevice(backend, engine, w.batch),
    };
    profiles[w.name] = await profile(engine, inputName[w.model], x);
  }
  // execute() overhead: one element through one Identity layer.
  using idEngine = await buildEngine(identityNet(), {
    device: "cuda",
    logger: quiet,
    disablePasses: "all",
  });
  const overhead = {
    host_us: await timeHost(idEngine, "x", new Float32Array([0.5])),
    device_us: timeDevice(backend, idEngine, 1),
  };

  let peers: Record<string, Record<string, Timing>> | string = "skipped (--no-peers)";
  if (!args.includes("--no-peers")) {
    Deno.writeTextFileSync(
      `${dir}/spec.json`,
      JSON.stringify({
        runs: RUNS,
        mlp_sizes: MLP_SIZES,
        workloads: WORKLOADS.map((w) => ({
          name: w.name,
          model: w.model,
          input: `${w.name}.in`,
          shape: w.shape,
        })),
      }),
    );
    peers = await runPeers(dir);
  }

  // The table.
  const variants = ["eager", "cuda_graph", "torch_compile"];
  const fmt = (w: Workload, us?: number) =>
    us === undefined
      ? "n/a"
      : w.throughput
      ? `${(w.batch / us).toFixed(2)}M/s`
      : `${us.toFixed(1)}µs`;
  const header = [
    "workload",
    "kiln host",
    "kiln dev",
    ...variants.flatMap((v) => [`${v} host`, `${v} dev`]),
    "graph/kiln host",
    "graph/kiln dev",
  ];
  const rows: string[][] = [header];
  const notes: string[] = [];
  for (const w of WORKLOADS) {
    const k = kiln[w.name];
    const p = typeof peers === "string" ? {} : peers[w.name] ?? {};
    const g = p.cuda_graph ?? {};
    const ratio = (a?: number, b?: number) => a && b ? (a / b).toFixed(2) : "n/a";
    rows.push([
      w.name,
      fmt(w, k.host_us),
      fmt(w, k.device_us),
      ...variants.flatMap((v) => [fmt(w, p[v]?.host_us), fmt(w, p[v]?.device_us)]),
      ratio(g.host_us, k.host_us),
      ratio(g.device_us, k.device_us),
    ]);
    for (const v of variants) if (p[v]?.error) notes.push(`${w.name} ${v}: ${p[v].error}`);
    try {
      const ref = new Float32Array(Deno.readFileSync(`${dir}/${w.name}.torch_out.f32`).buffer);
      notes.push(
        `${w.name}: Kiln vs PyTorch outputs, max rel err ${
          maxRelErr(outputs[w.name] as Float32Array, ref).toExponential(1)
        }`,
      );
    } catch {
      // no peer output
    }
  }
  rows.push([
    "execute() overhead (1-elem identity)",
    `${overhead.host_us.toFixed(1)}µs`,
    `${overhead.device_us.toFixed(1)}µs`,
  ]);
  const widths = header.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  console.log("\nper-layer device times (µs, profiled un-graphed runs):");
  for (const [name, p] of Object.entries(profiles)) console.log(`  ${name}: ${p}`);
  if (typeof peers === "string") console.log(`\npeers: ${peers}`);
  for (const n of notes) console.log(n);
  console.log(
    "\nratios > 1: Kiln is faster than PyTorch's CUDA-graph replay; throughput rows in million items/s",
  );
  for (const r of rows) console.log(r.map((c, i) => (c ?? "").padEnd(widths[i])).join(" | "));
  const json = flag("--json");
  if (json) {
    Deno.writeTextFileSync(
      json,
      JSON.stringify({ kiln, overhead, peers, profiles, runs: RUNS }, null, 2),
    );
  }
  Deno.removeSync(dir, { recursive: true });
}

await main();
if (!args.includes("--no-charrnn")) {
  await (await import("./charrnn.ts")).runCharRnnBench(RUNS, !args.includes("--no-peers"));
}
if (!args.includes("--no-googlenet")) {
  await (await import("./googlenet.ts")).runGoogLeNetBench(RUNS, !args.includes("--no-peers"));
}
