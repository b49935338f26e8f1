/**
 * Every builder pass on the GPU: for each pass a small network on which it fires, built for the
 * GPU with all passes and with none, run on the same random non-zero inputs at batch 1 and 3 of
 * the symbolic batch, activations NaN-poisoned; both must equal the CPU reference built with no
 * passes (max normwise relative error 1e-5), and the pass must have reported changes. The CPU
 * side of the same claim is tests/builder/passes/*_test.ts.
 */
import { buildEngine } from "../../builder/build.ts";
import { PASSES } from "../../builder/passes/mod.ts";
import { N } from "../../dsl/ir/dims.ts";
import type { Tensor } from "../../dsl/ir/graph.ts";
import type { HostArray } from "../../dsl/ir/dtype.ts";
import { Network } from "../../dsl/network.ts";
import { Engine } from "../../runtime/engine.ts";
import { randomArray, rng } from "../_util.ts";
import { inception } from "../builder/passes/_inception.ts";
import {
  type GpuTest,
  maxRelativeError,
  poisonedBackend,
  quiet,
  randomInput,
  worstAt,
} from "./_harness.ts";

const TOLERANCE = 1e-5;

export interface PassCase {
  /** The pass that must fire on the network. */
  pass: string;
  build(): Network;
}

function constant(net: Network, dims: number[], values: Float32Array): Tensor {
  return net.addLayer("Constant", [], { dims, dtype: "float32", values }).output(0);
}

export const PASS_CASES: PassCase[] = [
  {
    pass: "removeIdentity",
    build() {
      const net = new Network();
      net.markOutput(net.input("x", [N, 6]).identity().softmax().identity(), "y");
      return net;
    },
  },
  {
    pass: "foldConstants",
    build() {
      const r = rng(41);
      const net = new Network();
      const x = net.input("x", [N, 4, 3]);
      const wT = constant(net, [3, 4], randomArray(12, r));
      const w = wT.transpose([1, 0]).add(constant(net, [1], Float32Array.of(0.5)));
      net.markOutput(x.matmul(w.transpose([1, 0])).tanh(), "y");
      return net;
    },
  },
  {
    pass: "eliminateUnused",
    build() {
      const r = rng(31);
      const net = new Network();
      const x = net.input("x", [N, 6]);
      x.fc({ name: "dead", outputs: 2, weights: randomArray(12, r) }).relu();
      net.markOutput(x.fc({ outputs: 5, weights: randomArray(30, r) }).sigmoid(), "y");
      return net;
    },
  },
  {
    pass: "foldScale",
    build() {
      const r = rng(21);
      const net = new Network();
      const c = net.input("x", [N, 2, 6, 6]).conv({
        outputs: 4,
        kernel: 3,
        groups: 2,
        weights: randomArray(4 * 9, r),
        bias: randomArray(4, r),
      });
      const s = c.scale({
        mode: "channel",
        scale: randomArray(4, r, 0.5, 2),
        shift: randomArray(4, r),
      });
      net.markOutput(s.relu(), "y");
      return net;
    },
  },
  {
    pass: "fuseEpilogue",
    build() {
      const r = rng(11);
      const net = new Network();
      const x = net.input("x", [N, 3, 8, 8]);
      const conv = x.conv({
        outputs: 3,
        kernel: 3,
        padding: 1,
        weights: randomArray(81, r),
        bias: randomArray(3, r),
      });
      net.markOutput(conv.add(constant(net, [3, 1, 1], randomArray(3, r))).add(x).relu(), "y");
      return net;
    },
  },
  {
    pass: "fuseMlp",
    build() {
      const r = rng(51);
      const net = new Network();
      const y = net.input("x", [N, 96])
        .fc({ outputs: 64, weights: randomArray(64 * 96, r), bias: randomArray(64, r) })
        .sigmoid()
        .fc({ outputs: 32, weights: randomArray(32 * 64, r), bias: randomArray(32, r) })
        .relu()
        .fc({ outputs: 10, weights: randomArray(320, r), bias: randomArray(10, r) });
      net.markOutput(y, "y");
      return net;
    },
  },
  {
    pass: "fuseElementwiseChain",
    build() {
      const r = rng(61);
      const net = new Network();
      const x = net.input("x", [N, 4, 5, 5]);
      const y = x.tanh()
        .mul(constant(net, [4, 1, 1], randomArray(4, r, 0.5, 2)))
        .add(x)
        .sigmoid()
        .scale({ mode: "uniform", scale: [1.5], shift: [-0.25] });
      net.markOutput(y, "y");
      return net;
    },
  },
  ...["fuseHorizontal", "elideConcat"].map((pass) => ({
    pass,
    build() {
      const r = rng(71);
      const net = new Network();
      const x = net.input("x", [N, 8, 9, 9]);
      net.markOutput(inception(x, "inc", 8, [4, 3, 5, 2, 3, 4], r).relu(), "y");
      return net;
    },
  })),
];

async function runCase(c: PassCase): Promise<string> {
  const maxBatchSize = 3;
  const net = c.build();
  const reference = await buildEngine(net, {
    device: "cpu",
    maxBatchSize,
    logger: quiet,
    disablePasses: "all",
  });
  const gpu: Record<string, Engine> = {};
  let fired: string[] = [];
  for (const [variant, disablePasses] of [["passes", []], ["none", "all"]] as const) {
    using built = await buildEngine(net, {
      device: "cuda",
      maxBatchSize,
      logger: quiet,
      disablePasses: disablePasses as string[] | "all",
    });
    if (variant === "passes") fired = built.passes.find((p) => p.name === c.pass)?.changes ?? [];
    gpu[variant] = Engine.load(built.serialize(), await poisonedBackend());
  }
  try {
    if (!fired.length) {
      throw new Error(`${c.pass} did not fire on its network (GPU build)`);
    }
    let worst = 0;
    const r = rng(97);
    for (const batch of [1, 3]) {
      const inputs: Record<string, HostArray> = {};
      for (const b of reference.bindings.filter((b) => b.isInput)) {
        const n = b.shape.reduce<number>((a, d) => a * (d === "N" ? batch : d), 1);
        inputs[b.name] = randomInput(b.dtype, n, r);
      }
      using cpuCtx = reference.createContext();
      const want = await cpuCtx.execute(inputs, { batchSize: batch });
      for (const [variant, engine] of Object.entries(gpu)) {
        using ctx = engine.createContext();
        const got = await ctx.execute(inputs, { batchSize: batch });
        for (const [name, w] of Object.entries(want)) {
          const err = maxRelativeError(got[name], w);
          if (!(err <= TOLERANCE)) {
            throw new Error(
              `${c.pass}: GPU (${variant}) output ${name} at batch ${batch}: error ${err} (${
                worstAt(got[name], w)
              })`,
            );
          }
          worst = Math.max(worst, err);
        }
      }
    }
    const layers = (e: Engine) => e.layers.length;
    return `${fired.length} change(s); layers ${layers(gpu.none)} → ${
      layers(gpu.passes)
    }; worst error ${worst.toExponential(1)}`;
  } finally {
    reference[Symbol.dispose]();
    for (const e of Object.values(gpu)) e[Symbol.dispose]();
  }
}

export function passEquivalenceTests(): GpuTest[] {
  const tests: GpuTest[] = [{
    name: "pass equivalence: every builder pass has a GPU case",
    fn() {
      const missing = PASSES.map((p) => p.name).filter((n) =>
        !PASS_CASES.some((c) => c.pass === n)
      );
      if (missing.length) throw new Error(`passes without a GPU case: ${missing.join(", ")}`);
    },
  }];
  for (const c of PASS_CASES) {
    tests.push({
      name: `pass equivalence: ${c.pass} — GPU with all passes and with none equal the CPU`,
      fn: () => runCase(c),
    });
  }
  return tests;
}
