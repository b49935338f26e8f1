/**
 * The native library on a machine without a GPU (CI): it compiles with nvcc, loads, reports no
 * device, agrees with the TypeScript mirror on every struct layout, maps native failures to
 * KilnError, and device selection falls back to the CPU ("auto") or refuses ("cuda").
 * Skipped with a note where nvcc is absent.
 */
import assert from "node:assert/strict";
import { buildNative, findNvcc, LIBRARY } from "../../../cuda/build.ts";
import { KilnError } from "../../../errors.ts";
import {
  ABI_VERSION,
  ALL_STRUCTS,
  check,
  CONVOLUTION_PARAMS,
  deviceCount,
  ELEMENTWISE_PARAMS,
  layoutMismatches,
  openLibrary,
  STATUS,
  StructLayout,
} from "../../../ffi/mod.ts";
import { buildEngine, MemoryLogger, N, Network } from "../../../mod.ts";

const nvcc = await findNvcc();
if (!nvcc) console.warn("native_test: nvcc not found; the native library tests are skipped");
const ignore = !nvcc;
/** A GPU machine runs tests/gpu_main.ts instead; here no device is expected. */
const hasGpu = (() => {
  try {
    Deno.statSync("/dev/nvidia0");
    return true;
  } catch {
    return false;
  }
})();

let built: Promise<void> | undefined;
function ensureBuilt(): Promise<void> {
  built ??= buildNative().then(() => {});
  return built;
}

Deno.test({
  name: "cuda/build.ts compiles libkiln.so and skips the build when nothing changed",
  ignore,
  async fn() {
    await ensureBuilt();
    assert.ok(Deno.statSync(LIBRARY).size > 0);
    const again = await buildNative();
    assert.equal(again.rebuilt, false, "a second build with unchanged sources must do nothing");
    assert.deepEqual(again.compiled, []);
  },
});

Deno.test({
  name: "libkiln.so loads, speaks this ABI version and reports no device without a GPU",
  ignore,
  async fn() {
    await ensureBuilt();
    const lib = openLibrary(LIBRARY.pathname);
    try {
      assert.equal(lib.symbols.kiln_abi_version(), ABI_VERSION);
      const { count, reason } = deviceCount(lib);
      if (!hasGpu) {
        assert.equal(count, 0);
        assert.match(reason, /cudaError\w+/, "the reason names the CUDA error");
      }
    } finally {
      lib.close();
    }
  },
});

Deno.test({
  name: "kiln_abi_layout agrees with ffi/structs.ts on every struct",
  ignore,
  async fn() {
    await ensureBuilt();
    const lib = openLibrary(LIBRARY.pathname);
    try {
      for (const s of ALL_STRUCTS) assert.deepEqual(layoutMismatches(lib, s), [], s.cName);
      // Hand-computed C layouts, independent of the TS layout code.
      const size = (id: number) => {
        const out = new BigInt64Array(1);
        assert.equal(lib.symbols.kiln_abi_layout(id, -1, out), STATUS.OK);
        return Number(out[0]);
      };
      assert.equal(size(CONVOLUTION_PARAMS.id), 7 * 8 + 20 * 4 + 2 * 8); // + the batch strides
      assert.equal(size(ELEMENTWISE_PARAMS.id), 3 * 8 + 2 * 4 + 3 * 8 * 8);
      assert.equal(ELEMENTWISE_PARAMS.field("out_dims").offset, 32);
    } finally {
      lib.close();
    }
  },
});

Deno.test({
  name: "a layout mismatch is reported field by field",
  ignore,
  async fn() {
    await ensureBuilt();
    const lib = openLibrary(LIBRARY.pathname);
    try {
      // The softmax struct with two fields swapped in width: offsets after them move.
      const wrong = new StructLayout(6, "kiln_softmax_params", [
        ["x", "ptr"],
        ["y", "ptr"],
        ["outer", "i64"],
        ["len", "i32"],
        ["inner", "i32"],
        ["log", "i32"],
      ]);
      const problems = layoutMismatches(lib, wrong);
      assert.ok(problems.some((p) => p.includes("kiln_softmax_params.len")), problems.join("\n"));
    } finally {
      lib.close();
    }
  },
});

Deno.test({
  name: "native failures become KilnError with the library's message and the CUDA error name",
  ignore,
  async fn() {
    await ensureBuilt();
    const lib = openLibrary(LIBRARY.pathname);
    try {
      const out = new BigInt64Array(1);
      const st = lib.symbols.kiln_abi_layout(999, -1, out);
      assert.equal(st, STATUS.INVALID_ARGUMENT);
      assert.throws(
        () => check(lib, st, "kiln_abi_layout"),
        (e) =>
          e instanceof KilnError && e.code === "NATIVE_ERROR" &&
          /unknown struct id 999/.test(e.message),
      );
      if (!hasGpu) {
        const ptr = new BigUint64Array(1);
        const ms = lib.symbols.kiln_malloc(0, 1024n, ptr);
        assert.ok(ms >= STATUS.CUDA_ERROR_BASE, `status ${ms}`);
        assert.throws(
          () => check(lib, ms, "kiln_malloc"),
          (e) =>
            e instanceof KilnError && e.code === "CUDA_ERROR" &&
            /kiln_malloc: cudaError\w+/.test(e.message),
        );
      }
    } finally {
      lib.close();
    }
  },
});

Deno.test("openLibrary on a missing file throws NATIVE_ERROR with the loader's error as cause", () => {
  assert.throws(
    () => openLibrary("/nonexistent/libkiln.so"),
    (e) =>
      e instanceof KilnError && e.code === "NATIVE_ERROR" && e.cause instanceof Error &&
      e.message.includes("/nonexistent/libkiln.so") && e.message.includes("build:native"),
  );
});

Deno.test("StructLayout packs C-aligned fields and reads them back", () => {
  const s = new StructLayout(0, "demo", [
    ["a", "i32"],
    ["p", "ptr"],
    ["f", "f32"],
    ["v", "i64[3]"],
    ["c", "i32"],
  ]);
  assert.deepEqual(s.fields.map((f) => f.offset), [0, 8, 16, 24, 48]);
  assert.equal(s.size, 56);
  const bytes = s.pack({ a: -7, p: Deno.UnsafePointer.create(0x1234n), f: 1.5, v: [1, 2, 3] });
  assert.equal(s.readNumber(bytes, "a"), -7);
  assert.equal(s.readNumber(bytes, "p"), 0x1234);
  assert.equal(s.readNumber(bytes, "f"), 1.5);
  assert.equal(new DataView(bytes.buffer).getBigInt64(24 + 16, true), 3n);
  assert.equal(s.readNumber(bytes, "c"), 0);
});

function tinyNetwork(): Network {
  const net = new Network();
  const x = net.input("x", [N, 3]);
  net.markOutput(x.relu(), "y");
  return net;
}

Deno.test({
  name: 'buildEngine({device: "auto"}) without a GPU falls back to the CPU with a warning',
  ignore: ignore || hasGpu,
  async fn() {
    await ensureBuilt();
    const logger = new MemoryLogger();
    using engine = await buildEngine(tinyNetwork(), { device: "auto", logger });
    assert.equal(engine.device.kind, "cpu");
    const warning = logger.messages.find((m) => m.severity === "warning");
    assert.ok(warning, "a warning is logged");
    assert.match(warning.message, /no usable CUDA device.*running on the CPU/);
    using ctx = engine.createContext();
    const { y } = await ctx.execute({ x: new Float32Array([-1, 2, -3]) });
    assert.deepEqual([...y], [0, 2, 0]);
  },
});

Deno.test({
  name: 'buildEngine({device: "cuda"}) without a GPU raises DEVICE_UNAVAILABLE',
  ignore: ignore || hasGpu,
  async fn() {
    await ensureBuilt();
    for (const device of ["cuda", "cuda:1"] as const) {
      await assert.rejects(
        buildEngine(tinyNetwork(), { device, logger: new MemoryLogger() }),
        (e) =>
          e instanceof KilnError && e.code === "DEVICE_UNAVAILABLE" &&
          /no CUDA device is available/.test(e.message),
      );
    }
  },
});
