/**
 * The chain-fusion passes on the GPU: networks built with the passes (fuseMlp,
 * fuseElementwiseChain) run on the CUDA backend and are compared with the same networks built
 * for the CPU with every pass off (the layers as written), at several batches of a symbolic
 * batch, twice each (the second run replays the captured graph with new inputs), activations
 * poisoned with NaN. FusedMlp runs each of its paths (below); FusedElementwise covers constants,
 * tensor operands and reversed operands.
 */
import assert from "node:assert/strict";
import { type BuildConfig, buildEngine } from "../../builder/build.ts";
import { itemVolume, N } from "../../dsl/ir/dims.ts";
import { Network } from "../../dsl/network.ts";
import { Engine } from "../../runtime/engine.ts";
import { mlp, mlpWeights } from "../../bench/networks.ts";
import { randomArray, rng } from "../_util.ts";
import {
  type GpuTest,
  maxRelativeError,
  poisonedBackend,
  quiet,
  randomInput,
  worstAt,
} from "./_harness.ts";

const TOLERANCE = 1e-4;

async function compare(
  net: Network,
  maxBatch: number,
  batches: number[],
  fusedKind: string,
  seed: number,
): Promise<string> {
  const config: BuildConfig = { maxBatchSize: maxBatch, logger: quiet };
  const cpu = await buildEngine(net, { ...config, device: "cpu", disablePasses: "all" });
  using built = await buildEngine(net, { ...config, device: "cuda" });
  const gpu = Engine.load(built.serialize(), await poisonedBackend());
  assert.ok(
    gpu.layers.some((l) => l.kind === fusedKind),
    `no ${fusedKind} layer: ${gpu.layers.map((l) => `${l.name} (${l.kind})`).join(", ")}`,
  );
  const r = rng(seed);
  let worst = 0;
  using cctx = cpu.createContext();
  using gctx = gpu.createContext();
  for (const batch of batches) {
    for (let rep = 0; rep < 2; rep++) {
      const inputs: Record<string, Float32Array> = {};
      for (const b of cpu.bindings.filter((b) => b.isInput)) {
        const n = itemVolume(b.shape) * (b.shape[0] === "N" ? batch : 1);
        inputs[b.name] = randomInput("float32", n, r) as Float32Array;
      }
      const want = await cctx.execute(inputs, { batchSize: batch });
      const got = await gctx.execute(inputs, { batchSize: batch });
      for (const [name, expected] of Object.entries(want)) {
        const err = maxRelativeError(got[name], expected);
        if (!(err <= TOLERANCE)) {
          assert.fail(
            `batch ${batch}, run ${
              rep + 1
            }, output "${name}": max relative error ${err} > ${TOLERANCE} (${
              worstAt(got[name], expected)
            })`,
          );
        }
        worst = Math.max(worst, err);
      }
    }
  }
  return `${gpu.layers.length} layer(s) (unfused ${cpu.layers.length}), batches ${
    batches.join("/")
  }, max rel err ${worst.toExponential(1)}`;
}

/** Runs `f` with KILN_FUSED_MLP_PATH set to `path` (chain: up to 8 rows when forced). */
async function withPath(path: string, f: () => Promise<string>): Promise<string> {
  Deno.env.set("KILN_FUSED_MLP_PATH", path);
  try {
    return await f();
  } finally {
    Deno.env.delete("KILN_FUSED_MLP_PATH");
  }
}

/** FC chain with given sizes and activations (sigmoid when none given). */
function fcChain(sizes: number[], seed: number, acts: (string | undefined)[] = []): Network {
  const r = rng(seed);
  const net = new Network();
  let t = net.input("x", [N, sizes[0]]);
  for (let i = 0; i + 1 < sizes.length; i++) {
    t = t.fc({
      name: `fc${i}`,
      outputs: sizes[i + 1],
      weights: randomArray(sizes[i] * sizes[i + 1], r, -0.2, 0.2),
      bias: randomArray(sizes[i + 1], r),
    });
    const a = acts[i] ?? "sigmoid";
    if (a !== "none") t = t.activation({ type: a as "relu" });
  }
  net.markOutput(t, "y");
  return net;
}

/** MatrixMultiply stages with constant B (one transposed) and constant bias adds. */
function matmulChain(seed: number): Network {
  const r = rng(seed);
  const sizes = [64, 48, 32, 16];
  const net = new Network();
  let t = net.input("x", [N, sizes[0]]);
  for (let i = 0; i + 1 < sizes.length; i++) {
    const k = sizes[i], n = sizes[i + 1], transB = i === 1;
    const b = net.addLayer("Constant", [], {
      name: `W${i}`,
      dims: transB ? [n, k] : [k, n],
      values: randomArray(k * n, r, -0.3, 0.3),
    }).output(0);
    const bias = net.addLayer("Constant", [], {
      name: `b${i}`,
      dims: [n],
      values: randomArray(n, r),
    })
      .output(0);
    t = t.matmul(b, { name: `mm${i}`, transposeB: transB }).add(bias).tanh();
  }
  net.markOutput(t, "y");
  return net;
}

/** The CPU test's chain: exp, per-channel add, scale with power, relu, tensor product, ... */
function elementwiseChain(seed: number, C: number, H: number, W: number): Network {
  const r = rng(seed);
  const net = new Network();
  const x = net.input("x", [N, C, H, W]);
  const other = net.input("other", [N, C, H, W]);
  const k = net.addLayer("Constant", [], {
    name: "bias",
    dims: [C, 1, 1],
    values: randomArray(C, r),
  })
    .output(0);
  const pw = Float32Array.from({ length: C }, (_, c) => (c % 2 ? 2 : 1));
  const half = net.addLayer("Constant", [], { name: "half", dims: [1], values: [0.5] }).output(0);
  const row = net.addLayer("Constant", [], {
    name: "row",
    dims: [W],
    values: randomArray(W, r, 0.5, 1.5),
  }).output(0);
  const a = x.exp().add(k).scale({
    mode: "channel",
    channelAxis: 1,
    scale: randomArray(C, r),
    shift: randomArray(C, r),
    power: pw,
  }).relu();
  const y = half.sub(other.mul(a).abs()).div(row).clip(-0.75, 0.4).unary("erf").tanh();
  net.markOutput(y, "y");
  return net;
}

export function fusionTests(): GpuTest[] {
  return [
    // Each FusedMlp path, forced through KILN_FUSED_MLP_PATH (read when the graph is captured):
    // the chain of dependent-launch stage kernels and the one-kernel cluster path (both up to
    // 8 rows) and one tiled GEMM per stage; above 8 rows all take the GEMMs. The other cases
    // run the default choice (chain up to 2 rows).
    ...["chain", "cluster", "gemm"].map((path) => ({
      name: `fusion: bench sampleMLP 784→256→256→10 as one FusedMlp, ${path} path`,
      fn: () =>
        withPath(path, () => compare(mlp(mlpWeights()), 64, [1, 2, 3, 8, 9, 64], "FusedMlp", 1)),
    })),
    {
      name: "fusion: eight wide stages, cluster path (weights beyond shared memory read directly)",
      fn: () =>
        withPath(
          "cluster",
          () =>
            compare(
              fcChain([512, 1024, 1024, 512, 256, 256, 128, 64, 10], 3),
              8,
              [1, 4, 8],
              "FusedMlp",
              7,
            ),
        ),
    },
    {
      name: "fusion: FusedMlp with widths not multiple of 4 (scalar loads), mixed activations",
      fn: () =>
        compare(
          fcChain([30, 17, 13, 5, 7], 2, ["tanh", "relu", "none", "elu"]),
          40,
          [1, 5, 8, 40],
          "FusedMlp",
          2,
        ),
    },
    {
      name: "fusion: FusedMlp of eight wide stages (1024 features in shared memory)",
      fn: () =>
        compare(
          fcChain([512, 1024, 1024, 512, 256, 256, 128, 64, 10], 3),
          16,
          [1, 4, 8, 16],
          "FusedMlp",
          3,
        ),
    },
    {
      name: "fusion: MatrixMultiply + bias + tanh stages as one FusedMlp",
      fn: () => compare(matmulChain(4), 8, [1, 3, 8], "FusedMlp", 4),
    },
    {
      name: "fusion: elementwise chain (constants, tensor operand, reversed ops) as one kernel",
      fn: () => compare(elementwiseChain(5, 3, 5, 7), 16, [1, 3, 16], "FusedElementwise", 5),
    },
    {
      name: "fusion: elementwise chain over 64×32×32 per item (grid-stride)",
      fn: () => compare(elementwiseChain(6, 64, 32, 32), 4, [1, 4], "FusedElementwise", 6),
    },
  ];
}
