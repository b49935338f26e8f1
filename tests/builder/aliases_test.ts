/**
 * Tensor aliases (plan/aliases.ts, builder/aliases.ts): Constants read in place as weights and
 * reshape-only Shuffles as their input's bytes. Outputs against direct formulas at batch 1 and 3
 * (symbolic N), the plan round trip, fewer working layers, a smaller arena, the copies kept for
 * bindings, executeLoop, and crafted plans with bad aliases refused.
 */
import assert from "node:assert/strict";
import { buildEngine } from "../../builder/build.ts";
import { planMemory } from "../../builder/memory.ts";
import { N, Network } from "../../dsl/network.ts";
import { KilnError } from "../../errors.ts";
import { irHashOf } from "../../plan/format.ts";
import { manifestSchema } from "../../plan/manifest.ts";
import { type Manifest, readPlan } from "../../plan/mod.ts";
import { isNoOpLayer } from "../../plan/views.ts";
import { deserializeEngine, type Engine } from "../../runtime/engine.ts";
import { Logger } from "../../runtime/logger.ts";
import { assemblePlan, splitPlan } from "../plan/_craft.ts";
import { assertClose, randomArray, rng } from "../_util.ts";
import { aliasNetwork, aliasReference, F, UNFUSED, V, type Values } from "./_aliases_net.ts";

async function build(net: Network, disablePasses: string[] = []): Promise<Engine> {
  return await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 4,
    disablePasses,
    logger: new Logger("error"),
  });
}

async function checkOutputs(engine: Engine, v: Values, what: string): Promise<void> {
  using ctx = engine.createContext();
  const r = rng(9);
  for (const batch of [1, 3]) {
    const idx = Int32Array.from({ length: batch * 2 }, () => Math.floor(r() * V));
    const x = randomArray(batch * 12, r);
    // Twice: a second run must not see anything the first left in the arena.
    for (let run = 0; run < 2; run++) {
      const out = await ctx.execute({ idx, x });
      const ref = aliasReference(v, idx, x, batch);
      for (const name of ["z", "y", "xr", "k"] as const) {
        assertClose(
          out[name] as Float32Array,
          ref[name],
          { rtol: 1e-5, atol: 1e-6 },
          `${what} ${name} b${batch}`,
        );
      }
    }
  }
}

function manifestOf(engine: Engine): Manifest {
  return readPlan(engine.serialize()).manifest;
}

function aliasOf(m: Manifest, name: string) {
  return m.tensors.find((t) => t.name === name)?.alias;
}

Deno.test("aliases: constants and reshapes cost no layer and no arena bytes; outputs unchanged", async () => {
  const { net, v } = aliasNetwork();
  using engine = await build(net, UNFUSED);
  await checkOutputs(engine, v, "built");
  const m = manifestOf(engine);
  const layer = (name: string) => m.layers.findIndex((l) => l.name === name);
  // Every constant is its own weights, the one folded into the matmul's bias (now read by
  // nothing) included.
  for (const c of ["table", "scale", "shift", "w", "bias"]) {
    const l = m.layers[layer(c)];
    assert.deepEqual(m.tensors[l.outputs[0]].alias, { constant: layer(c) }, c);
  }
  // The reshape of a constant is the constant's weights too; the reshape of x is x.
  const shiftReshape = m.layers.find((l) => l.kind === "Shuffle" && m.tensors[l.inputs[0]].alias)!;
  assert.deepEqual(m.tensors[shiftReshape.outputs[0]].alias, { constant: layer("shift") });
  const xIndex = m.tensors.findIndex((t) => t.name === "x");
  const xReshape = m.layers.find((l) =>
    l.kind === "Shuffle" && l.inputs[0] === xIndex &&
    !m.bindings.some((b) => b.tensor === l.outputs[0])
  )!;
  assert.deepEqual(m.tensors[xReshape.outputs[0]].alias, { tensor: xIndex });
  assert.equal(m.memory.offsets[xReshape.outputs[0]], m.memory.offsets[xIndex]);
  // Bindings keep their copies: the Constant "k" and the reshape "xr" still run.
  assert.equal(aliasOf(m, "k"), undefined);
  assert.equal(aliasOf(m, "xr"), undefined);
  // Layers that do work: all but 5 constants and 3 reshapes (gather's, shift's, x's).
  const working = m.layers.filter((l) => !isNoOpLayer(l, m.tensors));
  assert.equal(m.layers.length - working.length, 8);
  assert.deepEqual(working.map((l) => l.kind).sort(), [
    "Constant",
    "ElementWise",
    "ElementWise",
    "Gather",
    "MatrixMultiply",
    "Shuffle",
  ]);
  // Without the aliases the same layers need a larger arena.
  const plain = m.tensors.map(({ alias: _, ...t }) => t);
  const without = planMemory(plain, m.layers, m.bindings, m.maxBatchSize);
  assert.ok(
    m.memory.arenaBytes < without.arenaBytes,
    `arena ${m.memory.arenaBytes} B with aliases, ${without.arenaBytes} B without`,
  );
});

Deno.test("aliases: with every pass, the constants fusion leaves and the reshapes still alias", async () => {
  const { net, v } = aliasNetwork();
  using engine = await build(net);
  await checkOutputs(engine, v, "default passes");
  const m = manifestOf(engine);
  const working = m.layers.filter((l) => !isNoOpLayer(l, m.tensors)).map((l) => l.kind);
  // table, w, bias, the reshapes of x and of the gather's output do nothing; k and xr copy.
  assert.equal(m.layers.length - working.length, 5);
  assert.deepEqual(working.sort(), [
    "Constant",
    "FusedElementwise",
    "Gather",
    "MatrixMultiply",
    "Shuffle",
  ]);
});

Deno.test("aliases: the plan round-trips (the optional alias field) and runs the same", async () => {
  const { net, v } = aliasNetwork();
  using engine = await build(net, UNFUSED);
  const bytes = engine.serialize();
  using again = await deserializeEngine(bytes, { device: "cpu" });
  assert.deepEqual(manifestOf(again).tensors, manifestOf(engine).tensors);
  await checkOutputs(again, v, "deserialized");
});

/** Rewrites a plan's manifest and expects the engine to refuse it, naming the alias. */
async function refused(edit: (m: Manifest) => void, message: RegExp): Promise<void> {
  const { net } = aliasNetwork();
  using engine = await build(net, UNFUSED);
  const parts = splitPlan(engine.serialize());
  const m = JSON.parse(parts.manifestText) as Manifest;
  edit(m);
  // Valid hashes around the edited manifest, so that the engine's own checks are reached.
  const bad = assemblePlan({ ...parts, manifestText: JSON.stringify(m) }, {
    editHeader: (h) => ({ ...h, irHash: irHashOf(manifestSchema.parse(m)) }),
  });
  await assert.rejects(
    () => deserializeEngine(bad, { device: "cpu" }),
    (e: unknown) => e instanceof KilnError && e.code === "PLAN_INVALID" && message.test(e.message),
  );
}

Deno.test("aliases: crafted plans with bad aliases are refused", async () => {
  const find = (m: Manifest, name: string) => m.tensors.findIndex((t) => t.name === name);
  // A binding may not alias weights (its copy out would read the weight section).
  await refused((m) => {
    m.tensors[find(m, "k")].alias = { constant: m.layers.findIndex((l) => l.name === "k") };
  }, /"k"\) cannot be an alias: it is a binding/);
  // An alias naming another Constant's weights.
  await refused((m) => {
    const table = m.layers.findIndex((l) => l.name === "table");
    const w = m.layers.findIndex((l) => l.name === "w");
    m.tensors[m.layers[w].outputs[0]].alias = { constant: table };
  }, /cannot be an alias: its producer is not/);
  // A layer that computes (the Gather) cannot have an aliased output.
  await refused((m) => {
    const g = m.layers.find((l) => l.kind === "Gather")!;
    m.tensors[g.outputs[0]].alias = { tensor: g.inputs[1] };
  }, /cannot be an alias: its producer is not/);
  // A reshape alias at another arena offset than its root's.
  await refused((m) => {
    const i = m.tensors.findIndex((t) => t.alias && "tensor" in t.alias);
    m.memory.offsets[i] += 256;
  }, /arena offset is not its root's/);
});

/**
 * A generator: idx int32 [N, 1] picks a row of a Constant table [V, F]; h' = tanh(h·Wᵀ + emb)
 * where h [N, F] is reshaped to [N, 2, 2] and back (aliases of a fed-back input), and next =
 * argmax(h'·Uᵀ) through a MatrixMultiply with a Constant Uᵀ [F, V].
 */
Deno.test("aliases: executeLoop feeding back inputs that reshapes alias, against the formula", async () => {
  const r = rng(21);
  const table = randomArray(V * F, r, -2, 2), W = randomArray(F * F, r, -1, 1);
  const Ut = randomArray(F * V, r, -2, 2);
  const net = new Network();
  const idx = net.input("idx", [N, 1], "int32");
  const h = net.input("h", [N, F]);
  const emb = net.addConstant([], { dims: [V, F], values: table }).output(0).gather(idx)
    .reshape([0, -1]);
  const hOut = h.reshape([0, 2, 2]).reshape([0, -1]).fc({ outputs: F, weights: W }).add(emb)
    .tanh();
  const u = net.addConstant([], { dims: [F, V], values: Ut });
  net.markOutput(hOut, "hOut");
  net.markOutput(hOut.matmul(u.output(0)).argmax(), "next");
  using engine = await build(net);
  const m = manifestOf(engine);
  assert.ok(m.tensors.filter((t) => t.alias).length >= 4, "constants and reshapes are aliases");
  using ctx = engine.createContext();
  const steps = 6;
  for (const batch of [1, 3]) {
    const idx0 = Int32Array.from({ length: batch }, (_, b) => (b * 2 + 1) % V);
    const h0 = randomArray(batch * F, r);
    const out = await ctx.executeLoop({ idx: idx0, h: h0 }, {
      steps,
      feedback: { next: "idx", hOut: "h" },
      collect: ["next", "hOut"],
    });
    // The formula, step by step.
    let hs = Float64Array.from(h0);
    const ids = Array.from(idx0);
    const next: number[] = [], hAll: number[] = [];
    for (let s = 0; s < steps; s++) {
      const hn = new Float64Array(batch * F);
      for (let b = 0; b < batch; b++) {
        for (let o = 0; o < F; o++) {
          let acc = table[ids[b] * F + o];
          for (let i = 0; i < F; i++) acc += hs[b * F + i] * W[o * F + i];
          hn[b * F + o] = Math.tanh(acc);
        }
        let best = 0, bestV = -Infinity;
        for (let c = 0; c < V; c++) {
          let acc = 0;
          for (let i = 0; i < F; i++) acc += hn[b * F + i] * Ut[i * V + c];
          if (acc > bestV) bestV = acc, best = c;
        }
        ids[b] = best;
      }
      hs = hn;
      next.push(...ids);
      hAll.push(...hn);
    }
    assert.deepEqual(Array.from(out.next), next, `next at batch ${batch}`);
    assertClose(out.hOut as Float32Array, hAll, { rtol: 1e-4, atol: 1e-5 }, `hOut b${batch}`);
  }
});
