/**
 * ExecutionContext.executeLoop against the same steps made with one execute() each (feeding the
 * outputs back by hand): the CPU backend's in-arena loop, the engine's fallback for a backend
 * without executeLoop, the arena cases that make a naive loop wrong, and bad requests.
 */
import assert from "node:assert/strict";
import { buildEngine } from "../../builder/build.ts";
import type { HostArray } from "../../dsl/ir/dtype.ts";
import { N, Network } from "../../dsl/network.ts";
import { KilnError } from "../../errors.ts";
import { readPlan } from "../../plan/mod.ts";
import type { Backend, BackendContext, LoadedPlan } from "../../runtime/backend.ts";
import { CpuBackend } from "../../runtime/cpu/backend.ts";
import { Engine, type ExecutionContext } from "../../runtime/engine.ts";
import { Logger } from "../../runtime/logger.ts";
import { randomArray, rng } from "../_util.ts";

const V = 5, H = 4;

/**
 * A tiny recurrent generator: idx (int32 [N, 1]) picks a row of an embedding table, the state
 * h' = tanh(h·Wᵀ + emb + b) with b an unbatched input that is not fed back, and next = argmax of
 * h'·Uᵀ + c. Feeding next → idx and hOut → h makes it generate.
 */
function generator(seed = 7): Network {
  const r = rng(seed);
  const net = new Network();
  const idx = net.input("idx", [N, 1], "int32");
  const h = net.input("h", [N, H]);
  const b = net.input("b", [H]);
  const table = net.addConstant([], { dims: [V, H], values: randomArray(V * H, r, -2, 2) });
  const emb = table.output(0).gather(idx).reshape([0, -1]);
  const hOut = h.fc({ outputs: H, weights: randomArray(H * H, r, -2, 2) }).add(emb).add(b).tanh();
  const logits = hOut.fc({ outputs: V, weights: randomArray(V * H, r), bias: randomArray(V, r) });
  net.markOutput(hOut, "hOut");
  net.markOutput(logits.argmax(), "next");
  return net;
}

/** oA = tanh(b·W + a·U), oB = sigmoid(a·U): the memory plan puts oB where input a lives. */
function crossed(seed = 11): Network {
  const r = rng(seed);
  const net = new Network();
  const a = net.input("a", [N, H]);
  const b = net.input("b", [N, H]);
  const v = a.fc({ outputs: H, weights: randomArray(H * H, r) });
  const oA = b.fc({ outputs: H, weights: randomArray(H * H, r) }).add(v).tanh();
  net.markOutput(v.sigmoid(), "oB");
  net.markOutput(oA, "oA");
  return net;
}

async function build(net: Network, maxBatchSize = 4): Promise<Engine> {
  return await buildEngine(net, { device: "cpu", maxBatchSize, logger: new Logger("error") });
}

/** Whether the plan's arena gives binding `x` bytes that tensor `y` (a binding name) also uses. */
function sharesBytes(engine: Engine, x: string, y: string): boolean {
  const m = readPlan(engine.serialize()).manifest;
  const slot = (name: string) => {
    const t = m.bindings.find((b) => b.name === name)!.tensor;
    const bytes = m.tensors[t].dims.reduce<number>((v, d) => v * (d === "N" ? 4 : d), 1) * 4;
    return [m.memory.offsets[t], m.memory.offsets[t] + bytes];
  };
  const [a0, a1] = slot(x), [b0, b1] = slot(y);
  return a0 < b1 && b0 < a1;
}

/** The reference: `steps` executes, outputs copied back into inputs through the host. */
async function byExecutes(
  ctx: ExecutionContext,
  first: Record<string, HostArray>,
  steps: number,
  feedback: Record<string, string>,
  collect: string[],
): Promise<Record<string, number[]>> {
  const inputs = { ...first };
  const out: Record<string, number[]> = Object.fromEntries(collect.map((c) => [c, []]));
  for (let s = 0; s < steps; s++) {
    const r = await ctx.execute(inputs);
    for (const c of collect) out[c].push(...r[c]);
    for (const [o, i] of Object.entries(feedback)) inputs[i] = r[o];
  }
  return out;
}

const GENERATE = { feedback: { next: "idx", hOut: "h" }, collect: ["next", "hOut"] };

function generatorInputs(batch: number, seed: number) {
  const r = rng(seed);
  return {
    idx: Int32Array.from({ length: batch }, (_, i) => (i * 3 + seed) % V),
    h: randomArray(batch * H, r),
    b: randomArray(H, r),
  };
}

Deno.test("executeLoop equals one execute per step with outputs fed back (batch 1 and 3 of N)", async () => {
  using engine = await build(generator());
  using ctx = engine.createContext();
  for (const [batch, steps] of [[1, 25], [3, 17], [4, 1]]) {
    const inputs = generatorInputs(batch, batch);
    const got = await ctx.executeLoop(inputs, { steps, ...GENERATE });
    const want = await byExecutes(ctx, inputs, steps, GENERATE.feedback, GENERATE.collect);
    assert.ok(got.next instanceof Int32Array && got.hOut instanceof Float32Array);
    assert.equal(got.next.length, steps * batch);
    assert.equal(got.hOut.length, steps * batch * H);
    assert.deepEqual(Array.from(got.next), want.next, `next, batch ${batch}`);
    assert.deepEqual(Array.from(got.hOut), want.hOut, `hOut, batch ${batch}`);
    // A generator that sits still would hide a missing feedback copy.
    if (steps > 5) assert.ok(new Set(got.next).size > 1, `next varies, batch ${batch}`);
  }
});

Deno.test("executeLoop gives the unbatched input again at every step when its bytes are reused", async () => {
  using engine = await build(generator());
  const m = readPlan(engine.serialize()).manifest;
  const b = m.bindings.find((x) => x.name === "b")!.tensor;
  const reused = m.tensors.some((_, t) =>
    t !== b && m.memory.offsets[t] === m.memory.offsets[b] &&
    !m.bindings.some((x) => x.tensor === t && x.isInput)
  );
  assert.ok(reused, "the memory plan no longer reuses b's bytes; this test would prove nothing");
  using ctx = engine.createContext();
  const inputs = generatorInputs(2, 5);
  const got = await ctx.executeLoop(inputs, { steps: 9, ...GENERATE });
  const want = await byExecutes(ctx, inputs, 9, GENERATE.feedback, GENERATE.collect);
  assert.deepEqual(Array.from(got.hOut), want.hOut);
  assert.deepEqual(Array.from(got.next), want.next);
});

Deno.test("executeLoop copies feedback right when an output's bytes are another pair's input", async () => {
  using engine = await build(crossed());
  assert.ok(sharesBytes(engine, "oB", "a"), "oB no longer shares a's bytes; the case is gone");
  using ctx = engine.createContext();
  const r = rng(3);
  const inputs = { a: randomArray(8, r), b: randomArray(8, r) };
  // oA → a first: copied in this order without staging, it would overwrite oB before its copy.
  const feedback = { oA: "a", oB: "b" };
  const got = await ctx.executeLoop(inputs, { steps: 6, feedback, collect: ["oA", "oB"] });
  const want = await byExecutes(ctx, inputs, 6, feedback, ["oA", "oB"]);
  assert.deepEqual(Array.from(got.oA), want.oA);
  assert.deepEqual(Array.from(got.oB), want.oB);
});

/** The CPU backend seen through execute() alone, counting the calls that reach it. */
class ExecuteOnlyBackend implements Backend {
  readonly inner = new CpuBackend();
  readonly device = this.inner.device;
  executes = 0;
  loops = 0;
  constructor(readonly withLoop: boolean) {}
  supports(kind: string): boolean {
    return this.inner.supports(kind);
  }
  load(plan: LoadedPlan) {
    const e = this.inner.load(plan);
    // deno-lint-ignore no-this-alias
    const self = this;
    return {
      weightBytes: e.weightBytes,
      createContext(): BackendContext {
        const c = e.createContext();
        const ctx: BackendContext = {
          execute(req) {
            self.executes++;
            return c.execute(req);
          },
          [Symbol.dispose]: () => c[Symbol.dispose](),
        };
        if (self.withLoop) {
          ctx.executeLoop = (req) => {
            self.loops++;
            return c.executeLoop!(req);
          };
        }
        return ctx;
      },
      [Symbol.dispose]: () => e[Symbol.dispose](),
    };
  }
}

Deno.test("executeLoop falls back to one execute per step on a backend without executeLoop", async () => {
  const built = await build(generator());
  const backend = new ExecuteOnlyBackend(false);
  using engine = Engine.load(built.serialize(), backend);
  using native = built;
  using ctx = engine.createContext();
  using nativeCtx = native.createContext();
  const inputs = generatorInputs(3, 9);
  const got = await ctx.executeLoop(inputs, { steps: 12, ...GENERATE });
  assert.equal(backend.executes, 12);
  const want = await nativeCtx.executeLoop(inputs, { steps: 12, ...GENERATE });
  assert.deepEqual(got, want);
  // Nothing collected: the loop still runs, and returns nothing.
  assert.deepEqual(await ctx.executeLoop(inputs, { steps: 2, feedback: GENERATE.feedback }), {});
  assert.equal(backend.executes, 14);
});

Deno.test("executeLoop records one profiler run per step", async () => {
  using engine = await build(generator());
  using ctx = engine.createContext();
  ctx.profiler.enabled = true;
  await ctx.executeLoop(generatorInputs(1, 1), { steps: 5, ...GENERATE });
  assert.equal(ctx.profiler.runs, 5);
  assert.equal(ctx.profiler.report().length, engine.layers.length);
});

function refused(pattern: RegExp, tensor?: string) {
  return (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.code, "INVALID_ARGUMENT");
    assert.match(e.message, pattern);
    if (tensor !== undefined) assert.equal(e.tensor, tensor);
    return true;
  };
}

Deno.test("executeLoop refuses bad loops with a KilnError naming the bindings, before running", async () => {
  const built = await build(generator());
  const backend = new ExecuteOnlyBackend(true);
  using engine = Engine.load(built.serialize(), backend);
  built[Symbol.dispose]();
  using ctx = engine.createContext();
  const inputs = generatorInputs(2, 4);
  const loop =
    (options: Record<string, unknown>, given: Record<string, HostArray> = inputs) => () =>
      ctx.executeLoop(given, options as never);
  const cases: [() => Promise<unknown>, RegExp, string?][] = [
    [loop({ steps: 0 }), /steps must be a positive integer, got 0/],
    [loop({ steps: 2.5 }), /steps must be a positive integer, got 2.5/],
    [loop({}), /steps must be a positive integer, got undefined/],
    [
      loop({ steps: 2, feedback: { hOut: "idx" } }),
      /feedback "hOut" → "idx": the output is \[N,4\] float32, the input \[N,1\] int32; dims and dtypes must be equal/,
      "hOut",
    ],
    [
      loop({ steps: 2, feedback: { next: "h" } }),
      /feedback "next" → "h": the output is \[N,1\] int32, the input \[N,4\] float32/,
      "next",
    ],
    [
      loop({ steps: 2, feedback: { hOut: "b" } }),
      /feedback "hOut" → "b": the output is \[N,4\] float32, the input \[4\] float32/,
    ],
    [
      loop({ steps: 2, feedback: { h: "h" } }),
      /feedback "h" → "h": "h" is not an output binding \(outputs: "hOut", "next"\)/,
      "h",
    ],
    [
      loop({ steps: 2, feedback: { hOut: "hOut" } }),
      /feedback "hOut" → "hOut": "hOut" is not an input binding \(inputs: "idx", "h", "b"\)/,
      "hOut",
    ],
    [
      loop({ steps: 2, feedback: { hOut: "h", next: "h" } }),
      /input "h" is fed by both "hOut" and "next"/,
    ],
    [loop({ steps: 2, collect: ["nope"] }), /collect: "nope" is not an output binding/, "nope"],
    [loop({ steps: 2, collect: ["next", "next"] }), /collect names "next" twice/, "next"],
    [loop({ steps: 2, collect: "next" }), /collect must be an array/],
    [loop({ steps: 2, feedback: "next" }), /feedback must be an object/],
    [
      loop({ steps: 2, ...GENERATE }, { idx: inputs.idx, h: inputs.h }),
      /input "b" is missing/,
      "b",
    ],
    [
      loop({ steps: 2, ...GENERATE, batchSize: 3 }),
      /input "idx" has 2 elements; batch 3 of \[N,1\] needs 3/,
      "idx",
    ],
  ];
  for (const [run, pattern, tensor] of cases) await assert.rejects(run, refused(pattern, tensor));
  assert.equal(backend.executes + backend.loops, 0);
  await ctx.executeLoop(inputs, { steps: 2, ...GENERATE });
  assert.deepEqual([backend.executes, backend.loops], [0, 1]);
});

Deno.test("executeLoop leaves the caller's input arrays as they were", async () => {
  using engine = await build(generator());
  using ctx = engine.createContext();
  const inputs = generatorInputs(2, 8);
  const copy = { idx: inputs.idx.slice(), h: inputs.h.slice(), b: inputs.b.slice() };
  await ctx.executeLoop(inputs, { steps: 4, ...GENERATE });
  assert.deepEqual(inputs, copy);
});
