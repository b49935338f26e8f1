/**
 * GPU runtime tests added with enqueue(): results on host, pinned and device memory equal
 * execute()'s, enqueue returns before the device finishes, bad bindings are refused before
 * anything is enqueued, device-detected failures (an index or bound out of range) become
 * KilnErrors naming the layer, plugins without a CUDA implementation are refused at build,
 * cuda:N placement, and execute()'s host overhead split between the engine, the backend and the
 * bare graph replay (for the report).
 */
import assert from "node:assert/strict";
import { mlp } from "../../bench/networks.ts";
import { buildEngine } from "../../builder/build.ts";
import { N } from "../../dsl/ir/dims.ts";
import type { HostArray } from "../../dsl/ir/dtype.ts";
import { registerPlugin } from "../../dsl/layers/plugin.ts";
import { Network } from "../../dsl/network.ts";
import { KilnError } from "../../errors.ts";
import {
  check,
  DeviceBuffer,
  deviceCount,
  IDENTITY_PARAMS,
  loadLibrary,
  memInfo,
  PinnedBuffer,
  Stream,
} from "../../ffi/mod.ts";
import type { Backend, BackendEngine, LoadedPlan } from "../../runtime/backend.ts";
import { createCudaBackend } from "../../runtime/cuda/mod.ts";
import { Engine } from "../../runtime/engine.ts";
import { randomArray, rng } from "../_util.ts";
import { type GpuTest, maxRelativeError, quiet } from "./_harness.ts";

const MiB = 1 << 20;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

function equalBits(a: HostArray, b: HostArray): boolean {
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** A backend whose contexts count enqueue and execute calls. */
class Counting implements Backend {
  calls = 0;
  constructor(readonly inner: Backend) {}
  get device() {
    return this.inner.device;
  }
  supports(kind: string) {
    return this.inner.supports(kind);
  }
  load(plan: LoadedPlan): BackendEngine {
    const e = this.inner.load(plan);
    return {
      weightBytes: e.weightBytes,
      createContext: () => {
        const c = e.createContext();
        return {
          execute: (req) => (this.calls++, c.execute(req)),
          enqueue: (req) => (this.calls++, c.enqueue!(req)),
          [Symbol.dispose]: () => c[Symbol.dispose](),
        };
      },
      [Symbol.dispose]: () => e[Symbol.dispose](),
    };
  }
}

/** data [N,6] float32 gathered along axis 1 by int32 indices [N,3]... as Gather requires. */
function gatherNet(): Network {
  const net = new Network();
  const table = net.addConstant([], {
    dims: [10, 4],
    values: randomArray(40, rng(3)),
  } as never).output();
  net.markOutput(table.gather(net.input("idx", [N, 2], "int32"), { axis: 0 }), "y");
  return net;
}

export function enqueueTests(): GpuTest[] {
  return [
    {
      name: "enqueue: host, pinned and device bindings give execute()'s results",
      async fn() {
        const lib = loadLibrary();
        using engine = await buildEngine(mlp(), { device: "cuda", maxBatchSize: 8, logger: quiet });
        using ctx = engine.createContext();
        const x = randomArray(5 * 784, rng(11));
        const want = (await ctx.execute({ input: x })).output;
        // Ordinary arrays, waited for by synchronize().
        const out = new Float32Array(want.length).fill(NaN);
        ctx.enqueue({ input: x }, { output: out }).synchronize();
        assert.ok(equalBits(out, want), "host arrays");
        // Pinned host memory, waited for by done() on a stream of the caller's.
        using stream = Stream.create(lib, 0);
        using pinned = PinnedBuffer.alloc(lib, x.byteLength + out.byteLength);
        const px = new Float32Array(pinned.bytes.buffer, 0, x.length);
        const py = new Float32Array(pinned.bytes.buffer, x.byteLength, want.length).fill(NaN);
        px.set(x);
        await ctx.enqueue({ input: px }, { output: py }, { stream }).done();
        assert.ok(equalBits(py, want), "pinned arrays on the caller's stream");
        // Device addresses: the batch must be given.
        using dx = DeviceBuffer.alloc(lib, 0, x.byteLength);
        using dy = DeviceBuffer.alloc(lib, 0, out.byteLength);
        dx.upload(x);
        ctx.enqueue({ input: { device: dx.at(0) } }, { output: { device: dy.at(0) } }, {
          batchSize: 5,
        }).synchronize();
        const back = new Float32Array(want.length);
        check(
          lib,
          lib.symbols.kiln_memcpy_to_host(back, dy.at(0), BigInt(back.byteLength)),
          "download",
        );
        assert.ok(equalBits(back, want), "device addresses");
        // execute() after enqueues still agrees.
        assert.ok(equalBits((await ctx.execute({ input: x })).output, want));
      },
    },
    {
      name: "enqueue returns before the device has finished the run",
      async fn() {
        const lib = loadLibrary();
        const net = new Network();
        const a = net.input("a", [N, 1024, 1024]);
        net.markOutput(a.matmul(net.input("b", [1024, 1024])), "y");
        using engine = await buildEngine(net, { device: "cuda", maxBatchSize: 4, logger: quiet });
        using ctx = engine.createContext();
        const bytes = 4 * 1024 * 1024 * 4;
        using da = DeviceBuffer.alloc(lib, 0, bytes);
        using db = DeviceBuffer.alloc(lib, 0, bytes / 4);
        using dy = DeviceBuffer.alloc(lib, 0, bytes);
        const bind = () =>
          [
            { a: { device: da.at(0) }, b: { device: db.at(0) } },
            { y: { device: dy.at(0) } },
            { batchSize: 4 },
          ] as const;
        ctx.enqueue(...bind()).synchronize(); // captures the graph
        const enqueueMs: number[] = [], totalMs: number[] = [];
        for (let i = 0; i < 5; i++) {
          const t0 = performance.now();
          const run = ctx.enqueue(...bind());
          const t1 = performance.now();
          run.synchronize();
          enqueueMs.push(t1 - t0);
          totalMs.push(performance.now() - t0);
        }
        const e = median(enqueueMs), t = median(totalMs);
        assert.ok(t > 0.3, `the run should take a while (${t.toFixed(3)} ms)`);
        assert.ok(e < 0.25 * t, `enqueue took ${e.toFixed(3)} of ${t.toFixed(3)} ms`);
        return `enqueue ${(e * 1000).toFixed(0)} µs, run ${(t * 1000).toFixed(0)} µs`;
      },
    },
    {
      name: "enqueue: bad bindings raise KilnError before anything is enqueued",
      async fn() {
        const counting = new Counting(await createCudaBackend(0));
        using built = await buildEngine(mlp(), { device: "cuda", maxBatchSize: 4, logger: quiet });
        using engine = Engine.load(built.serialize(), counting);
        using ctx = engine.createContext();
        const x = (b: number) => new Float32Array(b * 784);
        const y = (b: number) => new Float32Array(b * 10);
        const cases: [string, () => unknown][] = [
          ["unknown input", () => ctx.enqueue({ input: x(1), extra: x(1) }, { output: y(1) })],
          ["unknown output", () => ctx.enqueue({ input: x(1) }, { output: y(1), z: y(1) })],
          ["missing output", () => ctx.enqueue({ input: x(1) }, {})],
          [
            "wrong input size",
            () => ctx.enqueue({ input: new Float32Array(700) }, { output: y(1) }),
          ],
          ["output size disagrees", () => ctx.enqueue({ input: x(2) }, { output: y(3) })],
          ["wrong dtype", () => ctx.enqueue({ input: new Int32Array(784) }, { output: y(1) })],
          ["batch over the maximum", () => ctx.enqueue({ input: x(5) }, { output: y(5) })],
          [
            "device bindings without batchSize",
            () =>
              ctx.enqueue({ input: { device: Deno.UnsafePointer.create(4096n) } }, {
                output: { device: Deno.UnsafePointer.create(4096n) },
              }),
          ],
          [
            "a stream that is not a Stream",
            () => ctx.enqueue({ input: x(1) }, { output: y(1) }, { stream: {} }),
          ],
        ];
        for (const [what, call] of cases) {
          assert.throws(call, (e) => e instanceof KilnError && e.code === "INVALID_ARGUMENT", what);
        }
        // The stream check is the backend's own, made before it enqueues anything.
        assert.equal(counting.calls, 1, "only the bad stream reached the backend");
        const out = y(2);
        ctx.enqueue({ input: randomArray(2 * 784, rng(2)) }, { output: out }).synchronize();
        assert.ok(!out.some(Number.isNaN) && out.some((v) => v !== 0));
      },
    },
    {
      name: "an index out of range seen only by the GPU is a KilnError naming the layer",
      async fn() {
        using gpu = await buildEngine(gatherNet(), {
          device: "cuda",
          maxBatchSize: 4,
          logger: quiet,
        });
        using cpu = await buildEngine(gatherNet(), {
          device: "cpu",
          maxBatchSize: 4,
          logger: quiet,
        });
        using g = gpu.createContext();
        using c = cpu.createContext();
        const good = Int32Array.from([0, 9, -1, -10, 3, 4]);
        const want = (await c.execute({ idx: good })).y;
        assert.ok(maxRelativeError((await g.execute({ idx: good })).y, want) === 0);
        const bad = Int32Array.from([0, 9, 10, 3, 4, 2]);
        const layer = gpu.layers.find((l) => l.kind === "Gather")!.name;
        const named = (e: unknown) =>
          e instanceof KilnError && e.code === "INVALID_ARGUMENT" && e.layer === layer &&
          /index 10 \(element 2 of the indices\)/.test(e.message);
        await assert.rejects(g.execute({ idx: bad }), named, "execute");
        const out = new Float32Array(6 * 4);
        assert.throws(() => g.enqueue({ idx: bad }, { y: out }).synchronize(), named, "enqueue");
        await assert.rejects(c.execute({ idx: bad }), KilnError, "the CPU refuses it too");
        assert.ok(maxRelativeError((await g.execute({ idx: good })).y, want) === 0, "recovers");
      },
    },
    {
      name: "a plugin without enqueueCuda: the GPU build fails naming the layer",
      async fn() {
        registerPlugin({
          name: "GpuTestCpuOnly",
          version: "1",
          params: { safeParse: (raw: unknown) => ({ success: true as const, data: raw }) },
          inferShape: (inputs) => [inputs[0]],
          supportsDType: (d) => d === "float32",
          cpu: ({ inputs, outputs }) => outputs[0].data.set(inputs[0].data as never),
        });
        const net = new Network();
        net.markOutput(net.input("x", [N, 4]).plugin("GpuTestCpuOnly", {}, "1"), "y");
        const layer = net.layers.find((l) => l.kind === "Plugin")!.name;
        await assert.rejects(
          buildEngine(net, { device: "cuda", logger: quiet }),
          (e) =>
            e instanceof KilnError && e.layer === layer &&
            /no CUDA implementation/.test(e.message) && e.message.includes(layer),
        );
        using cpu = await buildEngine(net, { device: "cpu", logger: quiet });
        using c = cpu.createContext();
        const x = Float32Array.from([1, 2, 3, 4]);
        assert.deepEqual((await c.execute({ x })).y, x, "the CPU build runs it");
        return "refused on the GPU; runs on the CPU";
      },
    },
    {
      name: "cuda:N: an engine and its contexts allocate on their device; a missing one is refused",
      async fn() {
        const lib = loadLibrary();
        const { count } = deviceCount(lib);
        const net = new Network();
        net.markOutput(net.input("x", [N, 1024, 1024]).relu(), "y");
        const report: string[] = [];
        for (let d = 0; d < count; d++) {
          using engine = await buildEngine(net, {
            device: `cuda:${d}`,
            maxBatchSize: 16,
            logger: quiet,
          });
          const before = Array.from({ length: count }, (_, i) => memInfo(lib, i).free);
          using ctx = engine.createContext();
          const after = Array.from({ length: count }, (_, i) => memInfo(lib, i).free);
          // The arena (2 × 64 MiB at batch 16) lands on device d and nowhere else.
          assert.ok(before[d] - after[d] >= 64 * MiB, `cuda:${d} allocated the arena`);
          for (let i = 0; i < count; i++) {
            if (i !== d) assert.ok(Math.abs(before[i] - after[i]) < MiB, `cuda:${i} untouched`);
          }
          const x = randomArray(1024 * 1024, rng(d));
          const y = (await ctx.execute({ x })).y;
          assert.ok(y.every((v, i) => v === Math.max(0, x[i])));
          report.push(`cuda:${d} +${((before[d] - after[d]) / MiB).toFixed(0)} MiB`);
        }
        await assert.rejects(
          buildEngine(net, { device: `cuda:${count}`, logger: quiet }),
          (e) => e instanceof KilnError && e.code === "DEVICE_UNAVAILABLE",
        );
        return `${report.join(", ")}; cuda:${count} refused`;
      },
    },
    {
      name: "execute() overhead of a 1-element identity network (engine, backend, bare graph)",
      async fn() {
        const lib = loadLibrary();
        const net = new Network();
        net.markOutput(net.input("x", [N, 1]).identity(), "y");
        using engine = await buildEngine(net, {
          device: "cuda",
          logger: quiet,
          disablePasses: "all",
        });
        using ctx = engine.createContext();
        const x = new Float32Array([0.5]);
        const out = new Float32Array(1);
        // The floor: the same three graph nodes (copy in, identity kernel, copy out) replayed
        // through the FFI with nothing else, waited for by a blocking sync, then by a spin.
        using stream = Stream.create(lib, 0);
        using dev = DeviceBuffer.alloc(lib, 0, 512);
        using host = PinnedBuffer.alloc(lib, 512);
        stream.beginCapture();
        stream.copyAsync(dev.at(0), host.at(0), 4);
        check(
          lib,
          lib.symbols.kiln_launch_identity(
            IDENTITY_PARAMS.pack({ x: dev.at(0), y: dev.at(256), count: 1 }),
            stream.handle,
          ),
          "identity",
        );
        stream.copyAsync(host.at(256), dev.at(256), 4);
        using graph = stream.endCapture();
        const variants: [string, () => unknown][] = [
          ["execute", () => ctx.execute({ x })],
          ["enqueue+sync", () => ctx.enqueue({ x }, { y: out }).synchronize()],
          ["bare graph+sync", () => {
            graph.launch(stream);
            stream.synchronize();
          }],
          ["bare graph+spin", () => {
            graph.launch(stream);
            while (!stream.query()) { /* spin */ }
          }],
        ];
        // Interleaved rounds, so that every variant sees the same GPU clock and driver state.
        const samples = variants.map(() => [] as number[]);
        for (const [, f] of variants) for (let i = 0; i < 300; i++) await f();
        for (let round = 0; round < 10; round++) {
          for (let v = 0; v < variants.length; v++) {
            const f = variants[v][1];
            for (let i = 0; i < 300; i++) {
              const t0 = performance.now();
              await f();
              samples[v].push(performance.now() - t0);
            }
          }
        }
        const [engineUs, enqueueUs, bareUs, spinUs] = samples.map((s) => median(s) * 1000);
        // What Kiln adds to the bare replay (checks, staging, result arrays) stays small.
        assert.ok(
          engineUs <= bareUs + 6,
          `execute() takes ${engineUs.toFixed(1)} µs, the bare replay ${bareUs.toFixed(1)} µs`,
        );
        return `execute ${engineUs.toFixed(1)} µs, enqueue+sync ${enqueueUs.toFixed(1)} µs, ` +
          `bare graph+sync ${bareUs.toFixed(1)} µs, bare graph+spin ${spinUs.toFixed(1)} µs`;
      },
    },
  ];
}
