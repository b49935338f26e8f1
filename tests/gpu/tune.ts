/**
 * Tactics on the GPU (builder/tune, runtime/cuda/tactics.ts): every tactic offered for a set of
 * convolution and fully connected layers, each forced into the plan in turn, computes what the
 * CPU reference computes; the tuner's choice too; a rebuild through the timing cache times
 * nothing and chooses the same; a deterministic build replays the cache; the workspace limit
 * keeps out every tactic that needs more.
 */
import assert from "node:assert/strict";
import { buildEngine } from "../../builder/build.ts";
import type { Tensor } from "../../dsl/ir/graph.ts";
import { N, Network } from "../../dsl/network.ts";
import { readPlan, writePlan } from "../../plan/mod.ts";
import type { CudaBackend } from "../../runtime/cuda/backend.ts";
import { CudaTacticTimer, tunable } from "../../runtime/cuda/tactic_timer.ts";
import { ensureVendor, parseTactic } from "../../runtime/cuda/tactics.ts";
import { Engine } from "../../runtime/engine.ts";
import { Logger, MemoryLogger } from "../../runtime/logger.ts";
import { randomArray, rng } from "../_util.ts";
import { type GpuTest, maxRelativeError, poisonedBackend, quiet, worstAt } from "./_harness.ts";

const BATCH = 3;
/** As the tuner's own check: FP32 in another summation order, or cuDNN's FFT/Winograd. */
const TOLERANCE = 1e-3;

interface Case {
  name: string;
  net: () => Network;
  /** Input shape of one item. */
  item: number[];
}

function convCase(
  name: string,
  c: number,
  hw: number,
  o: {
    outputs: number;
    kernel: number;
    stride?: number;
    padding?: number;
    groups?: number;
    relu?: boolean;
    residual?: boolean;
  },
): Case {
  return {
    name,
    item: [c, hw, hw],
    net() {
      const r = rng(name.length * 7919);
      const groups = o.groups ?? 1;
      const net = new Network();
      const x = net.input("x", [N, c, hw, hw]);
      const stride = o.stride ?? 1, padding = o.padding ?? 0;
      const out = Math.floor((hw + 2 * padding - o.kernel) / stride) + 1;
      const inputs = [x];
      if (o.residual) inputs.push(net.input("r", [N, o.outputs, out, out]));
      const y = net.addConvolution(inputs, {
        name: "conv",
        outputs: o.outputs,
        kernel: o.kernel,
        stride,
        padding,
        groups,
        weights: randomArray(o.outputs * (c / groups) * o.kernel * o.kernel, r),
        bias: randomArray(o.outputs, r),
        ...(o.relu ? { activation: { type: "relu" as const } } : {}),
        ...(o.residual ? { residual: "pre" as const } : {}),
      }).output(0);
      net.markOutput(y, "y");
      return net;
    },
  };
}

function fcCase(name: string, k: number, outputs: number, relu: boolean): Case {
  return {
    name,
    item: [k],
    net() {
      const r = rng(outputs);
      const net = new Network();
      const x = net.input("x", [N, k]);
      const y = x.fc({
        name: "fc",
        outputs,
        weights: randomArray(outputs * k, r),
        bias: randomArray(outputs, r),
        ...(relu ? { activation: { type: "relu" as const } } : {}),
      });
      net.markOutput(y, "y");
      return net;
    },
  };
}

const CASES: Case[] = [
  convCase("3x3 pad 1, bias + relu", 16, 12, { outputs: 24, kernel: 3, padding: 1, relu: true }),
  convCase("1x1 (pointwise)", 32, 9, { outputs: 40, kernel: 1, relu: true }),
  convCase("1x1 stride 2", 16, 9, { outputs: 8, kernel: 1, stride: 2 }),
  convCase("7x7 stride 2 on 3 channels (direct)", 3, 21, {
    outputs: 36,
    kernel: 7,
    stride: 2,
    padding: 3,
    relu: true,
  }),
  convCase("grouped 3x3 with a residual", 8, 7, {
    outputs: 12,
    kernel: 3,
    padding: 1,
    groups: 4,
    residual: true,
  }),
  convCase("tall K (split-K)", 256, 4, { outputs: 32, kernel: 3, padding: 1 }),
  fcCase("fully connected, tall K", 1024, 40, true),
  fcCase("fully connected, wide", 96, 300, false),
];

function inputsFor(net: Network): Record<string, Float32Array> {
  const r = rng(17);
  const out: Record<string, Float32Array> = {};
  for (const t of net.inputs) {
    const n = BATCH * (t.dims.slice(1) as number[]).reduce((a, b) => a * b, 1);
    out[t.name] = randomArray(n, r);
  }
  return out;
}

async function run(engine: Engine, inputs: Record<string, Float32Array>): Promise<Float32Array> {
  using ctx = engine.createContext();
  return (await ctx.execute(inputs)).y as Float32Array;
}

/** Every tactic the tuner would time for the case's layer, forced into the plan one by one. */
async function everyTactic(c: Case): Promise<string> {
  const net = c.net();
  const inputs = inputsFor(net);
  using cpu = await buildEngine(c.net(), { device: "cpu", maxBatchSize: BATCH, logger: quiet });
  const want = await run(cpu, inputs);
  using built = await buildEngine(c.net(), {
    device: "cuda",
    maxBatchSize: BATCH,
    logger: quiet,
    tactics: "none",
  });
  const backend = await poisonedBackend() as CudaBackend;
  const plan = readPlan(built.serialize());
  const index = plan.manifest.layers.findIndex((l) => tunable(l, plan.manifest));
  assert.ok(index >= 0, "a tunable layer");
  const layer = plan.manifest.layers[index];
  using timer = new CudaTacticTimer(backend, plan.manifest, plan.weights, 64 << 20);
  const { tactics, skipped } = timer.candidates(layer, true);
  const failures: string[] = [];
  let worst = 0;
  for (const tactic of tactics) {
    const m = structuredClone(plan.manifest);
    m.layers[index].tactic = tactic === "default" ? undefined : tactic;
    const bytes = writePlan(m, plan.weights, plan.header.device, plan.header.cuda);
    using engine = Engine.load(bytes, backend);
    const got = await run(engine, inputs);
    const err = maxRelativeError(got, want);
    worst = Math.max(worst, err);
    if (!(err <= TOLERANCE)) failures.push(`${tactic}: ${err} (${worstAt(got, want)})`);
  }
  assert.deepEqual(failures, [], `${c.name}: tactics differing from the CPU`);
  const kinds = new Set(tactics.map((t) => parseTactic(t).kind));
  return `${tactics.length} tactics (${
    [...kinds].join(", ")
  }), ${skipped.length} not applicable, worst ${worst.toExponential(1)}`;
}

/**
 * Every tactic through views: an inception block whose branch convolutions, after concat
 * elision, write channel slices of the concatenation (batch strides). In round r each such layer
 * runs its r-th candidate (cycling), so every candidate of every layer runs strided once.
 */
async function stridedTactics(): Promise<string> {
  let r = rng(23);
  const conv = (x: Tensor, c: number, k: number, kernel: number) =>
    x.conv({
      outputs: k,
      kernel,
      padding: (kernel - 1) / 2,
      weights: randomArray(k * c * kernel * kernel, r, -0.5, 0.5),
      bias: randomArray(k, r),
      activation: { type: "relu" },
    });
  // Each build draws the same weights.
  const make = () => {
    r = rng(23);
    const net = new Network();
    const x = net.input("x", [N, 16, 7, 9]);
    const cat = conv(x, 16, 8, 1).concat([
      conv(conv(x, 16, 12, 1), 12, 16, 3),
      conv(conv(x, 16, 4, 1), 4, 8, 5),
      conv(x.maxPool({ window: 3, stride: 1, padding: 1 }), 16, 8, 1),
    ], { axis: 1 });
    // The concatenation feeds a layer, as in GoogLeNet (its slices are then views).
    net.markOutput(conv(cat, 40, 6, 1), "y");
    return net;
  };
  const inputs = { x: randomArray(BATCH * 16 * 63, rng(24)) };
  using cpu = await buildEngine(make(), { device: "cpu", maxBatchSize: BATCH, logger: quiet });
  const want = await run(cpu, inputs);
  using built = await buildEngine(make(), {
    device: "cuda",
    maxBatchSize: BATCH,
    logger: quiet,
    tactics: "none",
  });
  const backend = await poisonedBackend() as CudaBackend;
  const plan = readPlan(built.serialize());
  const m = plan.manifest;
  const viewLayers = m.layers.flatMap((l, i) =>
    l.kind === "Convolution" && [...l.inputs, ...l.outputs].some((t) => m.tensors[t].view)
      ? [i]
      : []
  );
  assert.ok(viewLayers.length >= 3, `${viewLayers.length} convolutions on views`);
  using timer = new CudaTacticTimer(backend, m, plan.weights, 64 << 20);
  const candidates = viewLayers.map((i) => timer.candidates(m.layers[i], true).tactics);
  const rounds = Math.max(...candidates.map((c) => c.length));
  let worst = 0;
  for (let round = 0; round < rounds; round++) {
    const mm = structuredClone(m);
    viewLayers.forEach((i, j) => {
      const t = candidates[j][round % candidates[j].length];
      mm.layers[i].tactic = t === "default" ? undefined : t;
    });
    using engine = Engine.load(
      writePlan(mm, plan.weights, plan.header.device, plan.header.cuda),
      backend,
    );
    const got = await run(engine, inputs);
    const err = maxRelativeError(got, want);
    worst = Math.max(worst, err);
    assert.ok(
      err <= TOLERANCE,
      `round ${round} (${
        viewLayers.map((i) => mm.layers[i].tactic ?? "default").join(", ")
      }): ${err} (${worstAt(got, want)})`,
    );
  }
  return `${viewLayers.length} convolutions on views, ${rounds} rounds, worst ${
    worst.toExponential(1)
  }`;
}

/** Builds with a timing cache twice (the second times nothing), then deterministically. */
async function rebuildFromCache(): Promise<string> {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-tune-gpu-" });
  try {
    const cachePath = `${dir}/timing.json`;
    const net = () => {
      const n = new Network();
      const r = rng(5);
      let x = n.input("x", [N, 8, 16, 16]);
      for (let i = 0; i < 3; i++) {
        x = x.conv({
          name: `conv${i}`,
          outputs: 8,
          kernel: i === 1 ? 1 : 3,
          padding: i === 1 ? 0 : 1,
          weights: randomArray(8 * 8 * (i === 1 ? 1 : 9), r),
          bias: randomArray(8, r),
          activation: { type: "relu" },
        });
      }
      n.markOutput(x, "y");
      return n;
    };
    const build = async (extra: { deterministic?: boolean } = {}) => {
      const log = new MemoryLogger("verbose");
      const t0 = performance.now();
      using e = await buildEngine(net(), {
        device: "cuda",
        maxBatchSize: 4,
        logger: log,
        timingCache: cachePath,
        ...extra,
      });
      const ms = performance.now() - t0;
      const tactics = readPlan(e.serialize()).manifest.layers.map((l) => l.tactic ?? "default");
      const summary = log.messages.find((m) => m.message.startsWith("tactics: 3 layers"))?.message;
      return { ms, tactics, summary: summary ?? "", log };
    };
    const first = await build();
    // conv0 and conv2 are the same problem: the second finds the first's entry already.
    assert.match(first.summary, /2 timed, 1 from the timing cache/);
    const listed = first.log.messages.filter((m) =>
      /^tactics "conv\d"( \(timing cache\))?:.* -> /.test(m.message)
    );
    assert.equal(listed.length, 3, "the verbose log lists every layer's tactics and winner");
    assert.ok(listed.every((m) => m.message.includes("default ")), "default among those timed");
    const second = await build();
    assert.match(second.summary, /0 timed, 3 from the timing cache/);
    assert.deepEqual(second.tactics, first.tactics);
    const replay = await build({ deterministic: true });
    assert.deepEqual(replay.tactics, first.tactics);
    // A layer the cache does not know cannot be replayed.
    const log = new Logger("error");
    const other = new Network();
    const x = other.input("x", [N, 8, 16, 16]);
    other.markOutput(
      x.conv({ name: "new", outputs: 4, kernel: 3, weights: randomArray(4 * 8 * 9, rng(9)) }),
      "y",
    );
    await assert.rejects(
      buildEngine(other, {
        device: "cuda",
        maxBatchSize: 4,
        logger: log,
        timingCache: cachePath,
        deterministic: true,
      }),
      /has no choice for 1 layer\(s\): "new"/,
    );
    return `first build ${first.ms.toFixed(0)} ms, rebuild from the cache ${
      second.ms.toFixed(0)
    } ms, tactics ${first.tactics.join(", ")}`;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

async function workspaceLimit(): Promise<string> {
  const c = convCase("tall K", 256, 4, { outputs: 32, kernel: 3, padding: 1 });
  const log = new MemoryLogger("verbose");
  using e = await buildEngine(c.net(), {
    device: "cuda",
    maxBatchSize: BATCH,
    logger: log,
    workspaceBytes: 0,
  });
  const tactic = readPlan(e.serialize()).manifest.layers.find((l) => l.kind === "Convolution")!
    .tactic;
  assert.equal(tactic ? parseTactic(tactic).workspace : 0, 0, `${tactic} uses workspace`);
  assert.ok(log.messages.some((m) => /over the 0-byte limit/.test(m.message)));
  const inputs = inputsFor(c.net());
  using cpu = await buildEngine(c.net(), { device: "cpu", maxBatchSize: BATCH, logger: quiet });
  const err = maxRelativeError(await run(e, inputs), await run(cpu, inputs));
  assert.ok(err <= TOLERANCE, `error ${err}`);
  return `chose ${tactic ?? "default"} within 0 bytes`;
}

export function tuneTests(): GpuTest[] {
  return [
    {
      name: "tactics: vendor libraries found at run time (never required)",
      async fn() {
        const backend = await poisonedBackend() as CudaBackend;
        return (["cudnn", "cublaslt"] as const).map((v) => {
          const s = ensureVendor(backend.lib, v);
          return `${v}: ${s.loaded ? `loaded from ${s.path}` : `absent (${s.reason})`}`;
        }).join("; ");
      },
    },
    ...CASES.map((c) => ({
      name: `tactics: every ${c.name} tactic equals the CPU reference`,
      fn: () => everyTactic(c),
    })),
    {
      name: "tactics: every convolution tactic writes a concatenation's channel slice (views)",
      fn: stridedTactics,
    },
    { name: "tactics: a rebuild with the timing cache times nothing", fn: rebuildFromCache },
    { name: "tactics: the workspace limit keeps out tactics that need more", fn: workspaceLimit },
  ];
}
