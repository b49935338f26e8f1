/**
 * The CUDA runtime on a GPU: ABI layouts, device query, graph replay vs profiled (un-graphed)
 * runs, plan round trip, many contexts at once, context churn without leaks, and bad inputs
 * refused before anything reaches the device.
 */
import assert from "node:assert/strict";
import { lenet, mlp } from "../../bench/networks.ts";
import { buildEngine } from "../../builder/build.ts";
import type { HostArray } from "../../dsl/ir/dtype.ts";
import { KilnError } from "../../errors.ts";
import { ALL_STRUCTS, deviceProps, layoutMismatches, loadLibrary, memInfo } from "../../ffi/mod.ts";
import type { Backend, BackendContext, BackendEngine } from "../../runtime/backend.ts";
import { createCudaBackend } from "../../runtime/cuda/mod.ts";
import { deserializeEngine, Engine } from "../../runtime/engine.ts";
import { randomArray, rng } from "../_util.ts";
import { type GpuTest, maxRelativeError, quiet } from "./_harness.ts";
import { enqueueTests } from "./runtime_enqueue.ts";

const MiB = 1 << 20;

function images(n: number, seed: number): Float32Array {
  return randomArray(n * 28 * 28, rng(seed), 0, 1);
}

function sameBits(a: HostArray, b: HostArray): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return x.every((v, i) => v === y[i]);
}

/** Wraps a backend to count how often contexts are asked to run. */
class CountingBackend implements Backend {
  executes = 0;
  constructor(readonly inner: Backend) {}
  get device() {
    return this.inner.device;
  }
  supports(kind: string): boolean {
    return this.inner.supports(kind);
  }
  load(plan: Parameters<Backend["load"]>[0]): BackendEngine {
    const e = this.inner.load(plan);
    return {
      weightBytes: e.weightBytes,
      createContext: (): BackendContext => {
        const c = e.createContext();
        return {
          execute: (req) => {
            this.executes++;
            return c.execute(req);
          },
          [Symbol.dispose]: () => c[Symbol.dispose](),
        };
      },
      [Symbol.dispose]: () => e[Symbol.dispose](),
    };
  }
}

export function runtimeTests(): GpuTest[] {
  return [
    {
      name: "ABI: every struct layout in ffi/structs.ts matches the library",
      fn() {
        const lib = loadLibrary();
        for (const s of ALL_STRUCTS) assert.deepEqual(layoutMismatches(lib, s), [], s.cName);
        return `${ALL_STRUCTS.length} structs`;
      },
    },
    {
      name: "device query: name, compute capability, memory",
      fn() {
        const lib = loadLibrary();
        const p = deviceProps(lib, 0);
        const m = memInfo(lib, 0);
        assert.ok(p.major >= 8, `compute capability ${p.major}.${p.minor}`);
        assert.ok(m.total > 0 && m.free <= m.total && m.total <= p.totalMemory + MiB);
        return `${p.name}, ${p.arch}, ${p.multiprocessors} SMs, ${(m.free / 2 ** 30).toFixed(1)}/${
          (m.total / 2 ** 30).toFixed(1)
        } GiB free, driver ${p.driverVersion}, runtime ${p.runtimeVersion}`;
      },
    },
    {
      name: "LeNet: graph replays equal the CPU, the profiled run and a deserialized engine",
      async fn() {
        const net = lenet();
        using gpu = await buildEngine(net, { device: "cuda", maxBatchSize: 16, logger: quiet });
        using cpu = await buildEngine(net, { device: "cpu", maxBatchSize: 16, logger: quiet });
        using g = gpu.createContext();
        using c = cpu.createContext();
        const x = images(16, 7);
        const want = (await c.execute({ data: x })).prob;
        const first = (await g.execute({ data: x })).prob;
        const replay = (await g.execute({ data: x })).prob;
        assert.ok(maxRelativeError(first, want) <= 1e-4, "GPU vs CPU");
        assert.ok(sameBits(first, replay), "a replay gives the same bits");
        g.profiler.enabled = true;
        const profiled = (await g.execute({ data: x })).prob;
        assert.ok(sameBits(first, profiled), "the un-graphed profiled run gives the same bits");
        const report = g.profiler.report();
        assert.equal(report.length, gpu.layers.length);
        assert.ok(report.every((l) => l.ms > 0 && l.ms < 100), JSON.stringify(report));
        using again = await deserializeEngine(gpu.serialize(), { device: "cuda", logger: quiet });
        using a = again.createContext();
        assert.ok(sameBits((await a.execute({ data: x })).prob, first), "deserialized engine");
        return report.map((l) => `${l.layer} ${(l.ms * 1000).toFixed(1)}µs`).join(", ");
      },
    },
    {
      name: "8 contexts of one engine executing concurrently equal sequential runs",
      async fn() {
        // longRunMs 0: every run after the first waits on a worker thread, so the eight
        // really overlap on their streams.
        const backend = await createCudaBackend(0, { longRunMs: 0 });
        using built = await buildEngine(lenet(), {
          device: "cuda",
          maxBatchSize: 64,
          logger: quiet,
        });
        using engine = Engine.load(built.serialize(), backend);
        const inputs = Array.from({ length: 8 }, (_, i) => images(64, 100 + i));
        const want: HostArray[] = [];
        {
          using one = engine.createContext();
          for (const x of inputs) want.push((await one.execute({ data: x })).prob);
        }
        const contexts = inputs.map(() => engine.createContext());
        try {
          for (let round = 0; round < 3; round++) {
            const got = await Promise.all(
              contexts.map((ctx, i) => ctx.execute({ data: inputs[i] })),
            );
            got.forEach((o, i) => assert.ok(sameBits(o.prob, want[i]), `round ${round}, ctx ${i}`));
          }
        } finally {
          for (const c of contexts) c[Symbol.dispose]();
        }
      },
    },
    {
      name: "10,000 context create/execute/dispose cycles leave device memory within 1 MiB",
      async fn() {
        const lib = loadLibrary();
        using engine = await buildEngine(mlp(), { device: "cuda", maxBatchSize: 4, logger: quiet });
        const x = randomArray(2 * 784, rng(5));
        let want: HostArray;
        {
          using ctx = engine.createContext();
          want = (await ctx.execute({ input: x })).output;
        }
        const before = memInfo(lib, 0).free;
        const t0 = performance.now();
        for (let i = 0; i < 10_000; i++) {
          using ctx = engine.createContext();
          const { output } = await ctx.execute({ input: x });
          if (i % 1000 === 0) assert.ok(sameBits(output, want), `cycle ${i}`);
        }
        const ms = performance.now() - t0;
        const after = memInfo(lib, 0).free;
        assert.ok(
          Math.abs(before - after) <= MiB,
          `free memory moved by ${((before - after) / MiB).toFixed(2)} MiB`,
        );
        return `${(ms / 10_000 * 1000).toFixed(0)} µs per cycle, free memory change ${
          before - after
        } bytes`;
      },
    },
    {
      name: "a context disposed while a run is in flight finishes it, then refuses new runs",
      async fn() {
        const backend = await createCudaBackend(0, { longRunMs: 0 });
        using built = await buildEngine(lenet(), {
          device: "cuda",
          maxBatchSize: 8,
          logger: quiet,
        });
        using engine = Engine.load(built.serialize(), backend);
        const ctx = engine.createContext();
        const x = images(8, 3);
        const want = (await ctx.execute({ data: x })).prob;
        const pending = ctx.execute({ data: x });
        ctx[Symbol.dispose]();
        assert.ok(sameBits((await pending).prob, want));
        await assert.rejects(ctx.execute({ data: x }), KilnError);
      },
    },
    {
      name: "bad inputs raise KilnError before anything is launched",
      async fn() {
        const counting = new CountingBackend(await createCudaBackend(0));
        using built = await buildEngine(lenet(), {
          device: "cuda",
          maxBatchSize: 4,
          logger: quiet,
        });
        using engine = Engine.load(built.serialize(), counting);
        using ctx = engine.createContext();
        const bad: [string, Record<string, HostArray>, { batchSize?: number }?][] = [
          ["unknown name", { data: images(1, 1), extra: new Float32Array(4) }],
          ["missing input", {}],
          ["wrong size", { data: new Float32Array(28 * 28 + 5) }],
          ["wrong dtype", { data: new Int32Array(28 * 28) }],
          ["batch over the maximum", { data: images(5, 1) }],
          ["batchSize disagrees with the data", { data: images(2, 1) }, { batchSize: 3 }],
        ];
        for (const [what, inputs, options] of bad) {
          await assert.rejects(
            ctx.execute(inputs, options),
            (e) => e instanceof KilnError && e.code === "INVALID_ARGUMENT",
            what,
          );
        }
        assert.equal(counting.executes, 0, "no run reached the backend");
        const ok = await ctx.execute({ data: images(2, 9) });
        assert.equal(ok.prob.length, 20);
        assert.equal(counting.executes, 1);
      },
    },
    ...enqueueTests(),
  ];
}
