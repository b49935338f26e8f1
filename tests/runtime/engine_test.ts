import assert from "node:assert/strict";
import { buildEngine } from "../../builder/build.ts";
import { KilnError } from "../../errors.ts";
import { N, Network } from "../../dsl/network.ts";
import type { Backend, BackendContext, ExecuteRequest, LoadedPlan } from "../../runtime/backend.ts";
import { CpuBackend } from "../../runtime/cpu/backend.ts";
import { Engine } from "../../runtime/engine.ts";
import { Logger } from "../../runtime/logger.ts";
import { assertClose, randomArray, rng } from "../_util.ts";

/**
 * x [N, 4] and an unbatched b [4]: y = relu(x + b) [N, 4] and p = softmax(x·W) [N, 3] over a
 * 4→3 fully connected layer.
 */
const W = Float32Array.from({ length: 12 }, (_, i) => ((i * 7) % 5) / 5 - 0.4);

function network(): Network {
  const net = new Network();
  const x = net.input("x", [N, 4]);
  const b = net.input("b", [4]);
  net.markOutput(x.add(b).relu(), "y");
  net.markOutput(x.fc({ outputs: 3, weights: W }).softmax(), "p");
  return net;
}

function reference(x: Float32Array, b: Float32Array) {
  const batch = x.length / 4;
  const y = Array.from(x, (v, i) => Math.max(0, Math.fround(v + b[i % 4])));
  const p: number[] = [];
  for (let n = 0; n < batch; n++) {
    const z = [0, 1, 2].map((o) =>
      [0, 1, 2, 3].reduce((a, j) => a + x[n * 4 + j] * W[o * 4 + j], 0)
    );
    const m = Math.max(...z), e = z.map((v) => Math.exp(v - m)), s = e.reduce((a, c) => a + c);
    p.push(...e.map((v) => v / s));
  }
  return { y, p };
}

const TOL = { rtol: 1e-5, atol: 1e-6 };

async function engine(maxBatchSize = 4): Promise<Engine> {
  return await buildEngine(network(), { device: "cpu", maxBatchSize, logger: new Logger("error") });
}

/** A CPU backend that counts the runs reaching it, to prove bad requests stop before. */
class CountingBackend implements Backend {
  readonly inner = new CpuBackend();
  readonly device = this.inner.device;
  runs = 0;
  supports(kind: string): boolean {
    return this.inner.supports(kind);
  }
  load(plan: LoadedPlan) {
    const e = this.inner.load(plan);
    // deno-lint-ignore no-this-alias
    const counter = this;
    return {
      weightBytes: e.weightBytes,
      createContext(): BackendContext {
        const c = e.createContext();
        return {
          execute(req: ExecuteRequest) {
            counter.runs++;
            return c.execute(req);
          },
          [Symbol.dispose]: () => c[Symbol.dispose](),
        };
      },
      [Symbol.dispose]: () => e[Symbol.dispose](),
    };
  }
}

Deno.test("Engine bindings describe inputs and outputs with the symbolic batch", async () => {
  using e = await engine();
  assert.deepEqual(e.bindings, [
    { name: "x", shape: [N, 4], dtype: "float32", isInput: true },
    { name: "b", shape: [4], dtype: "float32", isInput: true },
    { name: "y", shape: [N, 4], dtype: "float32", isInput: false },
    { name: "p", shape: [N, 3], dtype: "float32", isInput: false },
  ]);
  assert.equal(e.maxBatchSize, 4);
  assert.equal(e.binding("p")?.isInput, false);
  assert.equal(e.binding("nope"), undefined);
  assert.equal(e.device.kind, "cpu");
});

Deno.test("execute infers the batch from the input length, or takes it explicitly", async () => {
  using e = await engine();
  using ctx = e.createContext();
  const r = rng(1);
  const b = randomArray(4, r);
  // Every batch size up to the maximum, in a mixed order on one context.
  for (const batch of [3, 1, 4, 2, 3]) {
    const x = randomArray(batch * 4, r);
    const out = await ctx.execute({ x, b });
    const want = reference(x, b);
    assertClose(out.y as Float32Array, want.y, TOL, `y batch ${batch}`);
    assertClose(out.p as Float32Array, want.p, TOL, `p batch ${batch}`);
    const explicit = await ctx.execute({ x, b }, { batchSize: batch });
    assert.deepEqual(explicit, out);
  }
});

Deno.test("execute returns fresh arrays and leaves the inputs alone", async () => {
  using e = await engine();
  using ctx = e.createContext();
  const x = Float32Array.of(1, -2, 3, -4), b = Float32Array.of(0.5, 0.5, 0.5, 0.5);
  const first = await ctx.execute({ x, b });
  assert.deepEqual(Array.from(x), [1, -2, 3, -4]);
  (first.y as Float32Array).fill(42);
  const second = await ctx.execute({ x, b });
  assert.deepEqual(Array.from(second.y), [1.5, 0, 3.5, 0]);
  assert.notEqual(second.y, first.y);
});

function expectBadRequest(pattern: RegExp, tensor?: string) {
  return (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.code, "INVALID_ARGUMENT");
    assert.match(e.message, pattern);
    if (tensor !== undefined) assert.equal(e.tensor, tensor);
    return true;
  };
}

Deno.test("execute refuses bad inputs with a KilnError before anything runs", async () => {
  const backend = new CountingBackend();
  const built = await engine();
  using e = Engine.load(built.serialize(), backend);
  built[Symbol.dispose]();
  using ctx = e.createContext();
  const x = new Float32Array(8), b = new Float32Array(4);
  const bad: [() => Promise<unknown>, RegExp, string?][] = [
    [
      () => ctx.execute({ x, b, extra: x }),
      /"extra" is not an input binding \(inputs: "x", "b"\)/,
      "extra",
    ],
    [() => ctx.execute({ x }), /input "b" is missing \(inputs: "x", "b"\)/, "b"],
    [
      () => ctx.execute({ x: new Int32Array(8), b }),
      /input "x" is int32; the binding is float32 \(Float32Array\)/,
      "x",
    ],
    [
      () => ctx.execute({ x: new Float64Array(8) as never, b }),
      /input "x" is Float64Array; the binding is float32/,
      "x",
    ],
    [() => ctx.execute({ x: [1, 2, 3, 4] as never, b }), /input "x" must be a typed array/, "x"],
    [
      () => ctx.execute({ x: new Float32Array(6), b }),
      /input "x" has 6 elements, not a multiple of 4/,
      "x",
    ],
    [() => ctx.execute({ x: new Float32Array(0), b }), /input "x" has 0 elements/, "x"],
    [
      () => ctx.execute({ x, b: new Float32Array(8) }),
      /input "b" has 8 elements; \[4\] needs 4/,
      "b",
    ],
    [
      () => ctx.execute({ x, b }, { batchSize: 3 }),
      /input "x" has 8 elements; batch 3 of \[N,4\] needs 12/,
      "x",
    ],
    [
      () => ctx.execute({ x: new Float32Array(20), b }),
      /batch 5 exceeds the engine's maxBatchSize 4/,
    ],
    [() => ctx.execute({ x: new Float32Array(20), b }, { batchSize: 5 }), /batch 5 exceeds/],
    [() => ctx.execute({ x, b }, { batchSize: 0 }), /batchSize must be a positive integer, got 0/],
    [
      () => ctx.execute({ x, b }, { batchSize: 1.5 }),
      /batchSize must be a positive integer, got 1.5/,
    ],
    [() => ctx.execute(null as never), /execute\(\) expects an object of input arrays/],
  ];
  for (const [run, pattern, tensor] of bad) {
    await assert.rejects(run, expectBadRequest(pattern, tensor));
  }
  assert.equal(backend.runs, 0);
  await ctx.execute({ x, b });
  assert.equal(backend.runs, 1);
});

Deno.test("profiler: one entry per layer when enabled, ms >= 0, a table", async () => {
  using e = await engine();
  using ctx = e.createContext();
  const x = randomArray(8, rng(2)), b = randomArray(4, rng(3));
  await ctx.execute({ x, b });
  assert.deepEqual(ctx.profiler.report(), []);
  ctx.profiler.enabled = true;
  await ctx.execute({ x, b });
  await ctx.execute({ x, b });
  assert.equal(ctx.profiler.runs, 2);
  const report = ctx.profiler.report();
  assert.equal(report.length, e.layers.length);
  assert.deepEqual(report.map((t) => t.layer), e.layers.map((l) => l.name));
  for (const t of report) {
    assert.ok(Number.isFinite(t.ms) && t.ms >= 0, `${t.layer}: ${t.ms}`);
    assert.ok(t.sources.length >= 1);
  }
  const table = ctx.profiler.table();
  const lines = table.split("\n");
  assert.match(lines[0], /^layer\s+ms\s+%$/);
  assert.equal(lines.length, e.layers.length + 2);
  for (const l of e.layers) assert.ok(table.includes(l.name), `table lacks ${l.name}`);
  assert.match(lines[lines.length - 1], /^total\s+\d+\.\d{4}\s+100\.0$/);
  ctx.profiler.reset();
  assert.equal(ctx.profiler.runs, 0);
  assert.deepEqual(ctx.profiler.report(), []);
});

Deno.test("two contexts of one engine give the same results and do not disturb each other", async () => {
  using e = await engine();
  using a = e.createContext();
  using b2 = e.createContext();
  const r = rng(4);
  const bias = randomArray(4, r);
  const x1 = randomArray(12, r), x2 = randomArray(8, r);
  const [a1, b1] = await Promise.all([
    a.execute({ x: x1, b: bias }),
    b2.execute({ x: x1, b: bias }),
  ]);
  assert.deepEqual(a1, b1);
  // Interleaved runs with different inputs and batches: each context keeps its own activations.
  const a2 = await a.execute({ x: x2, b: bias });
  const b3 = await b2.execute({ x: x1, b: bias });
  assert.deepEqual(b3, a1);
  assert.deepEqual(await b2.execute({ x: x2, b: bias }), a2);
});

Deno.test("using disposes contexts and engines; a disposed one refuses work", async () => {
  const e = await engine();
  let escaped;
  {
    using ctx = e.createContext();
    escaped = ctx;
    await ctx.execute({ x: new Float32Array(4), b: new Float32Array(4) });
  }
  await assert.rejects(
    () => escaped.execute({ x: new Float32Array(4), b: new Float32Array(4) }),
    expectBadRequest(/the execution context has been disposed/),
  );
  {
    using scoped = e;
    assert.ok(scoped.createContext());
  }
  assert.throws(() => e.createContext(), expectBadRequest(/the engine has been disposed/));
  e[Symbol.dispose](); // disposing twice is harmless
  escaped[Symbol.dispose]();
});

Deno.test("serialize returns a copy of the plan", async () => {
  using e = await engine();
  const a = e.serialize(), b = e.serialize();
  assert.deepEqual(a, b);
  a[0] ^= 0xff;
  assert.notDeepEqual(a, e.serialize());
});
