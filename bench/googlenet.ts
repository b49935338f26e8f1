/**
 * The GoogLeNet benchmark (issue 8): BVLC GoogLeNet from its Caffe deploy.prototxt with the
 * parser's seeded random weights, FP32, batch 1 and 128, Kiln with and without the optimization
 * passes, against PyTorch eager (NCHW and channels_last), CUDA-graph replay and torch.compile
 * (reduce-overhead) with the same weights (bench/peers/googlenet_torch.py), in one run.
 *
 * Also prints what the build log says: layers before/after each pass, the activation memory
 * peak against one buffer per tensor, the tactic table of the five slowest layers, and the
 * build time of a rebuild through the timing cache against the first build.
 *
 *   deno run -A bench/googlenet.ts [--runs 200] [--data DIR] [--no-peers] [--json out.json]
 *
 * DIR holds caffe/bvlc_googlenet/deploy.prototxt (default: $KILN_GPU_DATA, .gpu-data/, then
 * ../shared/data). NVIDIA/BVLC data is never committed; the GPU machine gets a git-ignored copy.
 */
import { buildEngine, type Engine, MemoryLogger, type Network, parseCaffe } from "../mod.ts";
import { readPlan } from "../plan/mod.ts";
import { createCudaBackend } from "../runtime/cuda/mod.ts";
import type { CudaBackend, CudaContext } from "../runtime/cuda/backend.ts";

const args = Deno.args;
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const WARMUP = 20;
/** Issue 8's targets and the CUDA-graph figure they were set against. */
const TARGETS = { b128_vs_graph: 1.1, b1_ms: 1.0, passes_speedup_b1: 1.3 };

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function dataDir(): string {
  const candidates = [
    flag("--data"),
    Deno.env.get("KILN_GPU_DATA"),
    new URL("../.gpu-data", import.meta.url).pathname,
    new URL("../../shared/data", import.meta.url).pathname,
  ];
  for (const d of candidates) {
    if (!d) continue;
    try {
      Deno.statSync(`${d}/caffe/bvlc_googlenet/deploy.prototxt`);
      return d;
    } catch {
      // next
    }
  }
  throw new Error("caffe/bvlc_googlenet/deploy.prototxt not found (--data DIR)");
}

async function googlenet(deploy: string): Promise<Network> {
  const { network, blobs } = await parseCaffe({ deploy });
  network.markOutput(blobs.get("prob")!);
  return network;
}

function seededInput(n: number): Float32Array {
  const out = new Float32Array(n);
  let s = 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

interface Built {
  engine: Engine;
  log: MemoryLogger;
  buildMs: number;
}

async function build(
  net: Network,
  batch: number,
  passes: boolean,
  timingCache: string,
): Promise<Built> {
  const log = new MemoryLogger("verbose");
  const t0 = performance.now();
  const engine = await buildEngine(net, {
    device: "cuda",
    maxBatchSize: batch,
    logger: log,
    timingCache,
    ...(passes ? {} : { disablePasses: "all" as const }),
  });
  return { engine, log, buildMs: performance.now() - t0 };
}

function deviceUs(backend: CudaBackend, engine: Engine, batch: number, runs: number): number {
  const plan = readPlan(engine.serialize());
  using be = backend.load({ manifest: plan.manifest, weights: [], weightSection: plan.weights });
  using ctx = be.createContext() as CudaContext;
  ctx.deviceTimesMs(batch, WARMUP);
  return median(ctx.deviceTimesMs(batch, runs)) * 1000;
}

async function hostUs(engine: Engine, x: Float32Array, runs: number): Promise<number> {
  using ctx = engine.createContext();
  for (let i = 0; i < WARMUP; i++) await ctx.execute({ data: x });
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await ctx.execute({ data: x });
    samples.push(performance.now() - t0);
  }
  return median(samples) * 1000;
}

async function profile(engine: Engine, x: Float32Array) {
  using ctx = engine.createContext();
  ctx.profiler.enabled = true;
  for (let i = 0; i < 10; i++) await ctx.execute({ data: x });
  return ctx.profiler.report();
}

/** The tuner's verbose lines: per layer, the tactics timed (ms) and the winner. */
function tacticLines(
  log: MemoryLogger,
): Map<string, { timed: [string, number][]; rejected: number; winner: string }> {
  const out = new Map<string, { timed: [string, number][]; rejected: number; winner: string }>();
  for (const { message } of log.messages) {
    const m = /^tactics "(.*?)"(?: \(timing cache\))?: (.*) -> (\S+)$/.exec(message);
    if (!m) continue;
    const timed = [...m[2].matchAll(/(\S+) (\d+\.\d+) ms/g)].map((t) =>
      [t[1], Number(t[2])] as [string, number]
    );
    out.set(m[1], { timed, rejected: (m[2].match(/rejected \(/g) ?? []).length, winner: m[3] });
  }
  return out;
}

function maxRelErr(a: Float32Array, b: Float32Array): number {
  let scale = 0, worst = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
  }
  return worst / scale;
}

interface PeerTiming {
  host_us?: number;
  device_us?: number;
  compile_s?: number;
  error?: string;
}

async function runPeers(
  dir: string,
): Promise<
  { torch: string; device: string; workloads: Record<string, Record<string, PeerTiming>> } | string
> {
  const script = new URL("./peers/googlenet_torch.py", import.meta.url).pathname;
  try {
    const r = await new Deno.Command("python3", {
      args: [script, dir],
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

export async function runGoogLeNetBench(runs = 200, peersWanted = true): Promise<unknown> {
  const backend = await createCudaBackend(0) as CudaBackend;
  const deploy = `${dataDir()}/caffe/bvlc_googlenet/deploy.prototxt`;
  console.log(`\n== GoogLeNet (${deploy}) on ${backend.props.name} ==`);
  const net = await googlenet(deploy);
  const dir = Deno.makeTempDirSync({ prefix: "kiln-googlenet-" });
  const cache = `${dir}/timing-cache.json`;

  // The weights the parser drew, one file per blob, for the peer.
  const blobs: { layer: string; slot: string; file: string }[] = [];
  for (const l of net.layers) {
    for (const [slot, w] of l.weights) {
      const file = `w${blobs.length}.f32`;
      const v = w.values as Float32Array;
      Deno.writeFileSync(`${dir}/${file}`, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      blobs.push({ layer: l.name, slot, file });
    }
  }

  const kiln: Record<string, { host_us: number; device_us: number; buildMs: number }> = {};
  const outputs: Record<string, Float32Array> = {};
  const workloads: { name: string; input: string; shape: number[]; runs: number }[] = [];
  const report: Record<string, unknown> = {};
  for (const batch of [1, 128]) {
    const x = seededInput(batch * 3 * 224 * 224);
    const wname = `GoogLeNet b${batch}`;
    const wruns = batch === 1 ? runs : Math.max(20, Math.round(runs / 4));
    Deno.writeFileSync(`${dir}/b${batch}.in.f32`, new Uint8Array(x.buffer));
    workloads.push({
      name: wname,
      input: `b${batch}.in.f32`,
      shape: [batch, 3, 224, 224],
      runs: wruns,
    });
    for (const passes of [true, false]) {
      const key = `${wname}${passes ? "" : " no passes"}`;
      const b = await build(net, batch, passes, cache);
      try {
        {
          using ctx = b.engine.createContext();
          outputs[key] = (await ctx.execute({ data: x })).prob as Float32Array;
        }
        kiln[key] = {
          host_us: await hostUs(b.engine, x, wruns),
          device_us: deviceUs(backend, b.engine, batch, wruns),
          buildMs: b.buildMs,
        };
        console.log(
          `${key}: device ${(kiln[key].device_us / 1000).toFixed(3)} ms, host ${
            (kiln[key].host_us / 1000).toFixed(3)
          } ms, build ${(b.buildMs / 1000).toFixed(1)} s`,
        );
        if (!passes) continue;
        const m = readPlan(b.engine.serialize()).manifest;
        // Layers before/after each pass.
        console.log(`\n${key}: passes (layers before -> after, changes)`);
        for (const p of m.build.passes) {
          console.log(
            `  ${p.name.padEnd(24)} ${String(p.layersBefore).padStart(4)} -> ${
              String(p.layersAfter).padStart(4)
            }  ${p.changes.length}`,
          );
        }
        const mem = m.memory;
        console.log(
          `${key}: activations ${(mem.arenaBytes / 2 ** 20).toFixed(1)} MiB planned vs ${
            (mem.naiveBytes / 2 ** 20).toFixed(1)
          } MiB one buffer per tensor (${
            (mem.naiveBytes / Math.max(1, mem.arenaBytes)).toFixed(2)
          }x less)`,
        );
        const summary = b.log.messages.find((l) => /^tactics: \d+ layers/.test(l.message))?.message;
        console.log(`${key}: ${summary ?? "no tactic summary"}`);
        // The tactic table of the five slowest layers.
        const prof = (await profile(b.engine, x)).sort((p, q) => q.ms - p.ms);
        const tactics = tacticLines(b.log);
        console.log(
          `${key}: five slowest layers (profiled ms) and their tactics (best timed first)`,
        );
        for (const p of prof.slice(0, 5)) {
          const t = tactics.get(p.layer);
          const timed = t ? [...t.timed].sort((a, c) => a[1] - c[1]) : [];
          console.log(
            `  ${p.layer.slice(0, 60).padEnd(60)} ${p.ms.toFixed(3)} ms  -> ${
              t?.winner ?? "(not tuned)"
            }  ` +
              timed.slice(0, 4).map(([n, ms]) => `${n} ${ms.toFixed(3)}`).join(", ") +
              (t ? `  (${t.timed.length} timed, ${t.rejected} rejected)` : ""),
          );
        }
        const slowest = prof[0]?.layer;
        for (const { message } of b.log.messages) {
          if (message.startsWith(`tactics "${slowest}": `) && message.includes("not applicable")) {
            console.log(`  ${message.slice(0, 200)}`);
          }
        }
        const total = prof.reduce((a, p) => a + p.ms, 0);
        const byKind = new Map<string, number>();
        for (const p of prof) byKind.set(p.kind, (byKind.get(p.kind) ?? 0) + p.ms);
        console.log(
          `${key}: where the time goes (profiled, un-graphed): ${
            [...byKind].sort((a, c) => c[1] - a[1]).map(([k, ms]) =>
              `${k} ${(100 * ms / total).toFixed(0)}%`
            ).join(", ")
          } of ${total.toFixed(3)} ms`,
        );
        report[key] = {
          passes: m.build.passes.map((p) => [p.name, p.layersBefore, p.layersAfter]),
          memory: mem,
          summary,
          slowest: prof.slice(0, 5),
        };
        if (batch === 128) {
          // A rebuild through the timing cache: nothing is timed again.
          const again = await build(net, batch, passes, cache);
          const s2 = again.log.messages.find((l) => /^tactics: \d+ layers/.test(l.message))
            ?.message;
          const same = JSON.stringify(
            readPlan(again.engine.serialize()).manifest.layers.map((l) => l.tactic),
          ) ===
            JSON.stringify(m.layers.map((l) => l.tactic));
          console.log(
            `${key}: first build ${
              (b.buildMs / 1000).toFixed(2)
            } s; rebuild with the timing cache ${
              (again.buildMs / 1000).toFixed(2)
            } s (${s2}); same tactics: ${same}`,
          );
          report.rebuild = { firstMs: b.buildMs, rebuildMs: again.buildMs, summary: s2, same };
          again.engine[Symbol.dispose]();
        }
      } finally {
        b.engine[Symbol.dispose]();
      }
    }
  }

  let peers: Awaited<ReturnType<typeof runPeers>> = "skipped (--no-peers)";
  if (peersWanted) {
    Deno.writeTextFileSync(
      `${dir}/spec.json`,
      JSON.stringify({ blobs, workloads, compile_budget_s: 150 }),
    );
    peers = await runPeers(dir);
  }
  const variants = ["eager", "eager_cl", "cuda_graph_nchw", "cuda_graph", "torch_compile"];
  console.log(
    `\nGoogLeNet FP32 (device-resident median; b1 in ms, b128 in images/s)${
      typeof peers === "string" ? `; peers: ${peers}` : `; PyTorch ${peers.torch}`
    }`,
  );
  const fmt = (batch: number, us?: number) =>
    us === undefined
      ? "n/a"
      : batch === 1
      ? `${(us / 1000).toFixed(3)} ms`
      : `${(batch * 1e6 / us / 1000).toFixed(2)}k/s`;
  const header = ["workload", "kiln", "kiln no passes", ...variants, "best graph/kiln"];
  type Peer = Record<string, PeerTiming>;
  // The faster of the two CUDA-graph layouts is the figure Kiln is held against.
  const bestGraph = (p: Peer, f: "device_us" | "host_us") => {
    const xs = [p.cuda_graph?.[f], p.cuda_graph_nchw?.[f]].filter((x): x is number => !!x);
    return xs.length ? Math.min(...xs) : undefined;
  };
  const ratio = (a?: number, b?: number) => (a && b ? (a / b).toFixed(2) : "n/a");
  const rows = [header];
  for (const batch of [1, 128]) {
    const wname = `GoogLeNet b${batch}`;
    const p = typeof peers === "string" ? {} : peers.workloads[wname] ?? {};
    const k = kiln[wname], kn = kiln[`${wname} no passes`];
    rows.push([
      wname,
      fmt(batch, k?.device_us),
      fmt(batch, kn?.device_us),
      ...variants.map((v) => fmt(batch, p[v]?.device_us)),
      ratio(bestGraph(p, "device_us"), k?.device_us),
    ]);
    rows.push([
      `${wname} host`,
      fmt(batch, k?.host_us),
      fmt(batch, kn?.host_us),
      ...variants.map((v) => fmt(batch, p[v]?.host_us)),
      ratio(bestGraph(p, "host_us"), k?.host_us),
    ]);
    for (const v of variants) if (p[v]?.error) console.log(`${wname} ${v}: ${p[v].error}`);
    if (p.torch_compile?.compile_s) {
      console.log(`${wname} torch.compile took ${p.torch_compile.compile_s.toFixed(0)} s`);
    }
    try {
      const ref = new Float32Array(Deno.readFileSync(`${dir}/${wname}.torch_out.f32`).buffer);
      console.log(
        `${wname}: Kiln vs PyTorch outputs, normwise rel err ${
          maxRelErr(outputs[wname], ref).toExponential(1)
        } (no passes ${maxRelErr(outputs[`${wname} no passes`], ref).toExponential(1)})`,
      );
    } catch {
      // no peer output
    }
  }
  const widths = header.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  for (const r of rows) console.log(r.map((c, i) => (c ?? "").padEnd(widths[i])).join(" | "));
  const b1 = kiln["GoogLeNet b1"],
    b1n = kiln["GoogLeNet b1 no passes"],
    b128 = kiln["GoogLeNet b128"];
  const graph128 = typeof peers === "string"
    ? undefined
    : bestGraph(peers.workloads["GoogLeNet b128"] ?? {}, "device_us");
  console.log(
    `targets: b128 >= ${TARGETS.b128_vs_graph}x the best CUDA graph: ${
      graph128 && b128 ? (graph128 / b128.device_us).toFixed(2) : "n/a"
    }x; ` +
      `b1 <= ${TARGETS.b1_ms} ms: ${b1 ? (b1.device_us / 1000).toFixed(3) : "n/a"} ms; ` +
      `passes >= ${TARGETS.passes_speedup_b1}x at b1: ${
        b1 && b1n ? (b1n.device_us / b1.device_us).toFixed(2) : "n/a"
      }x`,
  );
  const result = { kiln, peers, report };
  const json = flag("--json");
  if (json) Deno.writeTextFileSync(json, JSON.stringify(result, null, 2));
  Deno.removeSync(dir, { recursive: true });
  return result;
}

if (import.meta.main) {
  await runGoogLeNetBench(Number(flag("--runs") ?? 200), !args.includes("--no-peers"));
}
