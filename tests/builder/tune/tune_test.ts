/**
 * The tuner's host side: the timing cache (file format, keying by device and layer signature,
 * atomic writes, stale and foreign files), tactic names, layer signatures, the build options'
 * validation, and that the CPU backend skips tuning. The timing itself runs in tests/gpu/tune.ts.
 */
import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import {
  type DeviceKey,
  signatureKey,
  TIMING_CACHE_FORMAT,
  TimingCache,
  writeAtomic,
} from "../../../builder/tune/cache.ts";
import { layerSignature, type TuneOptions } from "../../../builder/tune/tune.ts";
import { N, Network } from "../../../dsl/network.ts";
import { KilnError } from "../../../errors.ts";
import type { Manifest } from "../../../plan/mod.ts";
import { Logger, MemoryLogger } from "../../../runtime/logger.ts";
import {
  parseTactic,
  tacticLabel,
  tacticName,
  tacticWorkspaceBytes,
} from "../../../runtime/cuda/tactics.ts";
import { randomArray, rng } from "../../_util.ts";

const H100: DeviceKey = {
  name: "NVIDIA H100 80GB HBM3",
  arch: "sm_90",
  driver: 13000,
  runtime: 13000,
};

function tempPath(): { dir: string; path: string } {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-tune-" });
  return { dir, path: `${dir}/timing.json` };
}

const entry = (layer: string, signature: string, tactic = "igemm-128x64") => ({
  layer,
  signature,
  tactic,
  timings: [
    { tactic: "default", ms: 0.25 },
    { tactic, ms: 0.125 },
    { tactic: "cudnn-fft", rejected: "needs 9 bytes of workspace, over the 0-byte limit" },
  ],
});

Deno.test("timing cache: a saved cache reopens with the same entries, keyed by signature hash", () => {
  const { dir, path } = tempPath();
  try {
    const c = TimingCache.open(path, H100);
    assert.equal(c.size, 0);
    assert.equal(c.save(), false, "nothing to write");
    c.set(entry("conv1", '{"kind":"Convolution","n":1}'));
    c.set(entry("fc", '{"kind":"FullyConnected"}', "gemm-64x64-k4@ws=65536"));
    assert.equal(c.save(), true);
    const json = JSON.parse(Deno.readTextFileSync(path));
    assert.equal(json.format, TIMING_CACHE_FORMAT);
    assert.equal(json.version, 1);
    assert.deepEqual(json.device, H100);
    const key = signatureKey('{"kind":"Convolution","n":1}');
    assert.match(key, /^[0-9a-f]{64}$/);
    assert.equal(json.entries[key].tactic, "igemm-128x64");
    const again = TimingCache.open(path, H100);
    assert.equal(again.size, 2);
    assert.deepEqual(
      again.get('{"kind":"Convolution","n":1}'),
      entry("conv1", '{"kind":"Convolution","n":1}'),
    );
    assert.equal(again.get('{"kind":"Convolution","n":2}'), undefined);
    assert.equal(again.save(), false, "an unchanged cache is not rewritten");
    assert.deepEqual(
      Deno.readDirSync(dir).map((e) => e.name).toArray(),
      ["timing.json"],
      "no temp file left",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("timing cache: another device, driver or CUDA version makes it stale (warned, replaced)", () => {
  const { dir, path } = tempPath();
  try {
    const c = TimingCache.open(path, H100);
    c.set(entry("conv1", "sig"));
    c.save();
    for (
      const other of [
        { ...H100, name: "NVIDIA H200" },
        { ...H100, arch: "sm_100" },
        { ...H100, driver: 12080 },
        { ...H100, runtime: 12080 },
      ]
    ) {
      const log = new MemoryLogger();
      const stale = TimingCache.open(path, other, log);
      assert.equal(stale.size, 0, JSON.stringify(other));
      assert.match(
        log.messages[0].message,
        /is stale: made on NVIDIA H100 80GB HBM3 \(sm_90, driver 13000/,
      );
      assert.equal(log.messages[0].severity, "warning");
    }
    const log = new MemoryLogger();
    const stale = TimingCache.open(path, { ...H100, driver: 1 }, log);
    stale.set(entry("conv2", "sig2"));
    stale.save();
    const json = JSON.parse(Deno.readTextFileSync(path));
    assert.equal(json.device.driver, 1, "rewritten for the new device");
    assert.equal(Object.keys(json.entries).length, 1, "the stale entries are gone");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("timing cache: malformed caches are re-timed; foreign files and bad paths are errors", () => {
  const { dir, path } = tempPath();
  try {
    // An entry under a key that is not its signature's hash is dropped with a warning.
    const c = TimingCache.open(path, H100);
    c.set(entry("conv1", "sig"));
    c.save();
    const json = JSON.parse(Deno.readTextFileSync(path));
    const [key] = Object.keys(json.entries);
    json.entries[signatureKey("other")] = json.entries[key];
    delete json.entries[key];
    Deno.writeTextFileSync(path, JSON.stringify(json));
    let log = new MemoryLogger();
    assert.equal(TimingCache.open(path, H100, log).size, 0);
    assert.match(log.messages[0].message, /does not match its key/);
    // Another version: warned, nothing read.
    Deno.writeTextFileSync(path, JSON.stringify({ ...json, version: 99 }));
    log = new MemoryLogger();
    assert.equal(TimingCache.open(path, H100, log).size, 0);
    assert.match(log.messages[0].message, /another version or malformed/);
    // Not a timing cache: refused, and left untouched.
    Deno.writeTextFileSync(path, "precious notes");
    assert.throws(
      () => TimingCache.open(path, H100),
      (e) =>
        e instanceof KilnError && e.code === "INVALID_ARGUMENT" &&
        /not a Kiln timing cache/.test(e.message),
    );
    assert.equal(Deno.readTextFileSync(path), "precious notes");
    // A folder that does not exist: reading finds nothing, writing is an IO_ERROR naming it.
    const missing = TimingCache.open(`${dir}/no/such/dir/t.json`, H100);
    missing.set(entry("conv1", "sig"));
    assert.throws(
      () => missing.save(),
      (e) =>
        e instanceof KilnError && e.code === "IO_ERROR" &&
        e.message.includes(`${dir}/no/such/dir/t.json`),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("writeAtomic replaces the whole file through a rename, never leaving a partial one", () => {
  const { dir, path } = tempPath();
  try {
    writeAtomic(path, "first\n");
    const inode = Deno.statSync(path).ino;
    writeAtomic(path, "second\n");
    assert.equal(Deno.readTextFileSync(path), "second\n");
    // A rename installs a new file; an in-place write would keep the inode.
    assert.notEqual(Deno.statSync(path).ino, inode);
    assert.deepEqual(Deno.readDirSync(dir).map((e) => e.name).toArray(), ["timing.json"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("tactic names parse and print back; workspace suffixes and malformed names", () => {
  const algo = "0123456789abcdef".repeat(8);
  for (
    const name of [
      "default",
      "direct",
      "igemm-128x128",
      "igemm-64x64-k4@ws=1048576",
      "pointwise-128x64-k2@ws=4096",
      "gemm-32x32-k16@ws=65536",
      "cudnn-implicit-precomp-gemm",
      "cudnn-winograd-nonfused@ws=123",
      `cublaslt-${algo}@ws=32`,
    ]
  ) {
    const t = parseTactic(name);
    assert.equal(tacticName(t, t.workspace), name);
  }
  const t = parseTactic("pointwise-128x64-k2@ws=4096");
  assert.deepEqual([t.kind, t.variant, t.splits, t.workspace], ["pointwise", 1, 2, 4096]);
  assert.deepEqual([...parseTactic(`cublaslt-${algo}`).algo!], Array(8).fill(0x0123456789abcdefn));
  assert.match(tacticLabel(`cublaslt-${algo}@ws=32`), /^cublaslt#[0-9a-f]{8}@ws=32$/);
  for (
    const bad of [
      "",
      "igemm-100x100",
      "igemm-64x64-k32",
      "cudnn-magic",
      "cublaslt-12",
      "direct@x=1",
    ]
  ) {
    assert.throws(
      () => parseTactic(bad),
      (e) => e instanceof KilnError && e.code === "PLAN_INVALID" && e.message.includes(`"${bad}"`),
      bad,
    );
  }
  const layer = (tactic?: string) =>
    ({ name: "l", kind: "Convolution", tactic }) as unknown as Manifest["layers"][number];
  assert.equal(
    tacticWorkspaceBytes([layer(), layer("igemm-64x64-k4@ws=100"), layer("direct")]),
    100,
  );
});

function convNet(outputs: number): Network {
  const r = rng(3);
  const net = new Network();
  const x = net.input("x", [N, 4, 6, 6]);
  const y = x.conv({
    name: "conv",
    outputs,
    kernel: 3,
    padding: 1,
    weights: randomArray(outputs * 4 * 9, r),
    bias: randomArray(outputs, r),
  });
  net.markOutput(y, "y");
  return net;
}

Deno.test("layer signatures: equal for equal layers whatever the attribute order, else different", async () => {
  const build = (outputs: number, maxBatchSize: number) =>
    buildEngine(convNet(outputs), { device: "cpu", maxBatchSize, logger: new Logger("error") });
  const o: TuneOptions = {
    tactics: "all",
    workspaceBytes: 1 << 20,
    deterministic: false,
    logger: new Logger("error"),
  };
  const manifestOf = async (outputs: number, batch: number) => {
    using e = await build(outputs, batch);
    const { readPlan } = await import("../../../plan/mod.ts");
    return readPlan(e.serialize()).manifest;
  };
  const m = await manifestOf(8, 4);
  const conv = m.layers.find((l) => l.kind === "Convolution")!;
  const sig = layerSignature(m, conv, o);
  const reordered = { ...conv, attrs: Object.fromEntries(Object.entries(conv.attrs).reverse()) };
  assert.equal(layerSignature(m, reordered, o), sig);
  const parsed = JSON.parse(sig);
  assert.deepEqual(parsed.inputs[0].dims, [4, 4, 6, 6], "shapes at the largest batch");
  assert.equal(parsed.kind, "Convolution");
  const m2 = await manifestOf(8, 5);
  assert.notEqual(layerSignature(m2, m2.layers.find((l) => l.kind === "Convolution")!, o), sig);
  const m3 = await manifestOf(9, 4);
  assert.notEqual(layerSignature(m3, m3.layers.find((l) => l.kind === "Convolution")!, o), sig);
  assert.notEqual(layerSignature(m, conv, { ...o, workspaceBytes: 0 }), sig);
  assert.notEqual(layerSignature(m, conv, { ...o, tactics: "builtin" }), sig);
});

Deno.test("build options: tactics, timingCache and deterministic are validated", async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ tactics: "fastest" }, /tactics must be one of all, builtin, none/],
    [{ timingCache: "" }, /timingCache must be a file path/],
    [{ timingCache: 3 }, /timingCache must be a file path/],
    [{ deterministic: "yes" }, /deterministic must be a boolean/],
    [{ deterministic: true }, /deterministic: true replays a timing cache's choices/],
  ];
  for (const [config, message] of cases) {
    await assert.rejects(
      buildEngine(convNet(2), { device: "cpu", logger: new Logger("error"), ...config }),
      (e) => e instanceof KilnError && e.code === "INVALID_ARGUMENT" && message.test(e.message),
      JSON.stringify(config),
    );
  }
});

Deno.test("CPU builds skip tuning: no timing, no cache file, every layer on its one kernel", async () => {
  const { dir, path } = tempPath();
  try {
    const log = new MemoryLogger();
    using e = await buildEngine(convNet(2), { device: "cpu", logger: log, timingCache: path });
    assert.ok(log.messages.some((m) => /CPU backend has one kernel per layer/.test(m.message)));
    assert.ok(e.describe().layers.every((l) => l.tactic === undefined));
    assert.throws(() => Deno.statSync(path), Deno.errors.NotFound);
    // deterministic with a cache is accepted (there is nothing to replay on the CPU).
    using d = await buildEngine(convNet(2), {
      device: "cpu",
      logger: new Logger("error"),
      timingCache: path,
      deterministic: true,
    });
    assert.equal(d.layers.length, e.layers.length);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
