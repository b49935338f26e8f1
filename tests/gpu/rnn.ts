/**
 * RNNv2 and the device-side loop on the GPU: examples/charrnn.ts --device=cuda prints the same
 * prompt + 300 characters as an independent float64 decoder (tests/_charrnn_reference.ts),
 * executeLoop equals one execute per step (bitwise: the same kernels on the same inputs) and the
 * CPU's loop within FP32 tolerance, profiled loops take the per-step path, and the workspace
 * the TypeScript side reserves is what kiln_rnn_v2_workspace_bytes asks for.
 */
import assert from "node:assert/strict";
import { buildEngine } from "../../builder/build.ts";
import type { HostArray } from "../../dsl/ir/dtype.ts";
import { RNN_OPERATIONS, type RnnAttrs } from "../../dsl/layers/rnn_v2.ts";
import { buildCharRnn, CHECKPOINT, FEEDBACK, generate } from "../../examples/charrnn.ts";
import { check, loadLibrary, RNN_OP_CODE, RNN_V2_PARAMS } from "../../ffi/mod.ts";
import { readCheckpoint } from "../../parsers/tf/checkpoint.ts";
import { rnnWorkspaceBytes } from "../../runtime/cuda/_rnn.ts";
import { charRnnBenchNet } from "../../bench/charrnn_net.ts";
import { type GpuTest, maxRelativeError, quiet } from "./_harness.ts";
import { best, loadReference, referenceGreedy, ReferenceLstm } from "../_charrnn_reference.ts";

const PROMPT = "ROMEO:\n";

async function charRnnEngine(device: "cpu" | "cuda", maxBatchSize = 1) {
  const net = buildCharRnn(await readCheckpoint(CHECKPOINT));
  return await buildEngine(net, { device, maxBatchSize, logger: quiet });
}

/** Runs `steps` steps as executes, feeding back as `feedback` says; collects every output. */
async function stepByStep(
  ctx: { execute(i: Record<string, HostArray>): Promise<Record<string, HostArray>> },
  first: Record<string, HostArray>,
  steps: number,
): Promise<Record<string, HostArray[]>> {
  let inputs = { ...first };
  const out: Record<string, HostArray[]> = { next: [], hiddenOut: [], cellOut: [] };
  for (let s = 0; s < steps; s++) {
    const r = await ctx.execute(inputs);
    for (const k of Object.keys(out)) out[k].push(r[k]);
    inputs = { index: r.next, hiddenIn: r.hiddenOut, cellIn: r.cellOut };
  }
  return out;
}

function concat(parts: HostArray[]): HostArray {
  const all = new (parts[0].constructor as new (n: number) => HostArray)(
    parts.length * parts[0].length,
  );
  parts.forEach((p, i) => all.set(p as never, i * p.length));
  return all;
}

export function rnnTests(): GpuTest[] {
  return [
    {
      name: "rnn: the workspace reserved for RNNv2 is what kiln_rnn_v2_workspace_bytes asks",
      fn() {
        const lib = loadLibrary();
        const out = new BigUint64Array(1);
        let cases = 0;
        for (const op of RNN_OPERATIONS) {
          for (
            const [n, t, h, layers, dirs] of [[1, 1, 512, 2, 1], [3, 7, 45, 3, 2], [64, 1, 8, 1, 2]]
          ) {
            const attrs = {
              op,
              hiddenSize: h,
              layers,
              direction: dirs === 2 ? "bidirectional" : "unidirectional",
            } as RnnAttrs;
            const params = RNN_V2_PARAMS.pack({
              op: RNN_OP_CODE[op],
              n,
              t,
              e: 5,
              hidden: h,
              layers,
              dirs,
            });
            check(lib, lib.symbols.kiln_rnn_v2_workspace_bytes(params, out), "workspace bytes");
            assert.equal(rnnWorkspaceBytes(attrs, n, t), Number(out[0]), `${op} ${n} ${t} ${h}`);
            cases++;
          }
        }
        return `${cases} shapes`;
      },
    },
    {
      name: "rnn: examples/charrnn.ts --device=cuda prints the float64 decoder's 300 characters",
      async fn() {
        const { vocab, symbols, weights } = await loadReference();
        const ref = referenceGreedy(weights, [...PROMPT].map((c) => vocab[c]), 300);
        const expected = ref.ids.map((i) => symbols[i]).join("");
        const file = new URL("../../examples/charrnn.ts", import.meta.url).pathname;
        const r = await new Deno.Command(Deno.execPath(), {
          // manual: the GPU machine resolves npm packages from node_modules alone (no registry).
          args: [
            "run",
            "--node-modules-dir=manual",
            "-A",
            file,
            "--prompt=ROMEO:\\n",
            "--length=300",
            "--device=cuda",
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const stdout = new TextDecoder().decode(r.stdout);
        const stderr = new TextDecoder().decode(r.stderr);
        assert.ok(r.success, `charrnn exited with ${r.code}:\n${stderr.slice(-2000)}`);
        const text = stdout.replace(/\n$/, "");
        const want = PROMPT + expected;
        const at = [...text].findIndex((c, i) => c !== want[i]);
        assert.equal(
          text,
          want,
          at < 0
            ? ""
            : `first difference at character ${at - PROMPT.length}: GPU ${
              JSON.stringify(text[at])
            }, reference ${JSON.stringify(want[at])} (top-2 margin ${
              ref.margins[at - PROMPT.length]
            })`,
        );
        console.log(`--- CharRNN on the GPU (${stderr.trim().split("\n").at(-1)}):\n${text}\n---`);
        return `prompt + 300 characters equal (smallest top-2 margin ${
          Math.min(...ref.margins).toFixed(4)
        })`;
      },
    },
    {
      name: "rnn: CharRNN generate() on the GPU at batch 3 follows the float64 reference",
      async fn() {
        const { vocab, weights } = await loadReference();
        using engine = await charRnnEngine("cuda", 4);
        using ctx = engine.createContext();
        const starts = ["K", "J", "a"].map((c) => vocab[c]);
        const steps = 40, state = 256;
        const got = await ctx.executeLoop(
          {
            index: Int32Array.from(starts),
            hiddenIn: new Float32Array(3 * state),
            cellIn: new Float32Array(3 * state),
          },
          { steps, feedback: FEEDBACK, collect: ["next", "hiddenOut"] },
        );
        let worst = 0;
        starts.forEach((start, b) => {
          const lstm = new ReferenceLstm(weights);
          let id = start;
          for (let s = 0; s < steps; s++) {
            const next = best(lstm.step(id)).index;
            assert.equal(got.next[s * 3 + b], next, `item ${b}, step ${s}`);
            const at = (s * 3 + b) * state;
            const h = [...lstm.h[0], ...lstm.h[1]];
            h.forEach((v, i) => (worst = Math.max(worst, Math.abs(got.hiddenOut[at + i] - v))));
            id = next;
          }
        });
        assert.ok(worst < 5e-5, `hidden state error ${worst}`);
        // generate() through the same engine: the prompt's text again.
        const text = await generate(engine, vocab, PROMPT, 30);
        assert.equal(text.length, 30);
        return `max |h - reference| ${worst.toExponential(1)}`;
      },
    },
    {
      name: "rnn: executeLoop on the GPU equals one execute per step (and the CPU's loop)",
      async fn() {
        const net = charRnnBenchNet();
        using gpu = await buildEngine(net, { device: "cuda", maxBatchSize: 8, logger: quiet });
        using cpu = await buildEngine(net, { device: "cpu", maxBatchSize: 8, logger: quiet });
        let detail = "";
        for (const [batch, steps] of [[1, 37], [5, 16], [8, 3]]) {
          const state = batch * 2 * 512;
          const first = {
            index: Int32Array.from({ length: batch }, (_, i) => (7 * i + 3) % 65),
            hiddenIn: Float32Array.from({ length: state }, (_, i) => Math.sin(i) * 0.5),
            cellIn: Float32Array.from({ length: state }, (_, i) => Math.cos(i) * 0.5),
          };
          using ctx = gpu.createContext();
          const collect = ["next", "hiddenOut", "cellOut"];
          const loop = await ctx.executeLoop(first, { steps, feedback: FEEDBACK, collect });
          const each = await stepByStep(ctx, first, steps);
          for (const name of collect) {
            assert.deepEqual(loop[name], concat(each[name]), `${name}, batch ${batch}`);
          }
          // Profiled: per-step executes with layer times, the same values.
          ctx.profiler.enabled = true;
          const profiled = await ctx.executeLoop(first, { steps: 2, feedback: FEEDBACK, collect });
          ctx.profiler.enabled = false;
          assert.deepEqual(profiled.next, concat(each.next.slice(0, 2)));
          // The CPU's loop: the states within FP32 tolerance over the first steps (greedy ids may
          // part ways later on a near tie, which the random benchmark weights do not rule out).
          using cctx = cpu.createContext();
          const few = Math.min(steps, 3);
          const want = await cctx.executeLoop(first, { steps: few, feedback: FEEDBACK, collect });
          const n = few * state;
          const err = maxRelativeError(loop.hiddenOut.subarray(0, n), want.hiddenOut);
          assert.ok(err <= 1e-4, `batch ${batch}: hidden state vs CPU ${err}`);
          detail += `b${batch}×${steps} `;
        }
        return `${detail}bitwise equal`;
      },
    },
  ];
}
