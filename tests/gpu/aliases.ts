/**
 * Tensor aliases on the GPU (plan/aliases.ts): Constants read in place from the uploaded weights
 * and reshape-only Shuffles reading their input's bytes. The alias test network
 * (tests/builder/_aliases_net.ts) on the GPU (activations poisoned with NaN before every run)
 * against the CPU and the direct formulas, with and without the fusions that absorb its
 * constants; the CharRNN benchmark network's plan (its embedding, softmax_w and Shuffle do
 * nothing) against the CPU, one execute and a generation loop.
 */
import { charRnnBenchNet } from "../../bench/charrnn_net.ts";
import type { HostArray } from "../../dsl/ir/dtype.ts";
import { readPlan } from "../../plan/mod.ts";
import { isNoOpLayer } from "../../plan/views.ts";
import type { Engine } from "../../runtime/engine.ts";
import { randomArray, rng } from "../_util.ts";
import { aliasNetwork, aliasReference, UNFUSED, V } from "../builder/_aliases_net.ts";
import { enginePair, type GpuTest, maxRelativeError, worstAt } from "./_harness.ts";

/** Elementwise and small GEMMs; the LSTM's states over 3 steps get the RNN tests' 1e-4. */
const TOLERANCE = 1e-5, RNN_TOLERANCE = 1e-4;

function plan(e: Engine): { aliases: number; noOps: string[] } {
  const m = readPlan(e.serialize()).manifest;
  return {
    aliases: m.tensors.filter((t) => t.alias).length,
    noOps: m.layers.filter((l) => isNoOpLayer(l, m.tensors)).map((l) => l.name),
  };
}

function check(what: string, gpu: HostArray, want: HostArray, tolerance = TOLERANCE): number {
  const err = maxRelativeError(gpu, want);
  if (!(err <= tolerance)) {
    throw new Error(`${what}: relative error ${err} (${worstAt(gpu, want)})`);
  }
  return err;
}

export function aliasTests(): GpuTest[] {
  return [
    {
      name: "aliases: constants and reshapes on the GPU equal the CPU and the formulas",
      async fn() {
        let worst = 0;
        const details: string[] = [];
        for (const disablePasses of [UNFUSED, []]) {
          const { net, v } = aliasNetwork();
          const { cpu, gpu } = await enginePair(net, { maxBatchSize: 4, disablePasses });
          using _c = cpu, _g = gpu;
          const p = plan(gpu);
          if (p.aliases < 4) throw new Error(`only ${p.aliases} aliases in the GPU plan`);
          using gctx = gpu.createContext();
          using cctx = cpu.createContext();
          const r = rng(17);
          for (const batch of [1, 3, 4]) {
            const idx = Int32Array.from({ length: batch * 2 }, () => Math.floor(r() * V));
            const x = randomArray(batch * 12, r);
            const ref = aliasReference(v, idx, x, batch);
            const want = await cctx.execute({ idx, x });
            // Twice: graph capture, then replay.
            for (let run = 0; run < 2; run++) {
              const got = await gctx.execute({ idx, x });
              for (const name of ["z", "y", "xr", "k"] as const) {
                const at = `${name} b${batch} run ${run}`;
                worst = Math.max(worst, check(`${at} vs CPU`, got[name], want[name]));
                worst = Math.max(worst, check(`${at} vs formula`, got[name], ref[name]));
              }
            }
          }
          details.push(`${p.noOps.length} no-op layers`);
        }
        return `${details.join(" / ")}; worst error ${worst.toExponential(1)}`;
      },
    },
    {
      name: "aliases: CharRNN's constants and reshape cost nothing; GPU equals the CPU",
      async fn() {
        const { cpu, gpu } = await enginePair(charRnnBenchNet(), { maxBatchSize: 4 });
        using _c = cpu, _g = gpu;
        const p = plan(gpu);
        for (const name of ["embedding", "softmax_w"]) {
          if (!p.noOps.includes(name)) throw new Error(`"${name}" still runs: ${p.noOps}`);
        }
        if (!p.noOps.some((n) => n.startsWith("shuffle"))) throw new Error("the Shuffle runs");
        using gctx = gpu.createContext();
        using cctx = cpu.createContext();
        let worst = 0;
        for (const batch of [1, 3]) {
          const state = batch * 2 * 512;
          const first = {
            index: Int32Array.from({ length: batch }, (_, i) => (7 * i + 3) % 65),
            hiddenIn: Float32Array.from({ length: state }, (_, i) => Math.sin(i) * 0.5),
            cellIn: Float32Array.from({ length: state }, (_, i) => Math.cos(i) * 0.5),
          };
          const got = await gctx.execute(first), want = await cctx.execute(first);
          for (const name of ["next", "hiddenOut", "cellOut"]) {
            const e = check(`${name} b${batch}`, got[name], want[name], RNN_TOLERANCE);
            worst = Math.max(worst, e);
          }
          const feedback = { next: "index", hiddenOut: "hiddenIn", cellOut: "cellIn" };
          const collect = ["next", "hiddenOut"];
          const loop = await gctx.executeLoop(first, { steps: 3, feedback, collect });
          const cloop = await cctx.executeLoop(first, { steps: 3, feedback, collect });
          for (const name of collect) {
            const e = check(`loop ${name} b${batch}`, loop[name], cloop[name], RNN_TOLERANCE);
            worst = Math.max(worst, e);
          }
        }
        return `no-op layers: ${p.noOps.join(", ")}; worst error ${worst.toExponential(1)}`;
      },
    },
  ];
}
