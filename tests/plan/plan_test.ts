import assert from "node:assert/strict";
import { buildEngine } from "../../builder/build.ts";
import { KilnError } from "../../errors.ts";
import {
  inspectPlan,
  KILN_VERSION,
  PLAN_FORMAT_VERSION,
  readPlan,
  writePlan,
} from "../../plan/mod.ts";
import { deserializeEngine, type Engine } from "../../runtime/engine.ts";
import { Logger } from "../../runtime/logger.ts";
import { randomArray, rng } from "../_util.ts";
import { assemblePlan, planTestNetwork, resum, splitPlan } from "./_craft.ts";

async function build(): Promise<Engine> {
  return await buildEngine(planTestNetwork(), {
    device: "cpu",
    maxBatchSize: 3,
    logger: new Logger("error"),
  });
}

function planError(code: string, pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

Deno.test("plan round trip: deserialized engine gives bit-identical outputs", async () => {
  using original = await build();
  const bytes = original.serialize();
  using loaded = await deserializeEngine(bytes, { device: "cpu" });
  assert.deepEqual(loaded.bindings, original.bindings);
  assert.deepEqual(loaded.layers, original.layers);
  assert.deepEqual(loaded.serialize(), bytes);
  using c1 = original.createContext();
  using c2 = loaded.createContext();
  const r = rng(7);
  for (const batch of [1, 3, 2]) {
    const data = randomArray(batch * 128, r);
    const want = await c1.execute({ data });
    const got = await c2.execute({ data });
    assert.deepEqual(Object.keys(got), ["prob", "pooled"]);
    for (const k of Object.keys(want)) {
      assert.deepEqual(
        new Uint8Array(got[k].buffer, got[k].byteOffset, got[k].byteLength),
        new Uint8Array(want[k].buffer, want[k].byteOffset, want[k].byteLength),
        `${k} batch ${batch}`,
      );
    }
  }
});

Deno.test("plan round trip through a file and from an unaligned view", async () => {
  using original = await build();
  const bytes = original.serialize();
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/net.kiln`;
    await Deno.writeFile(path, bytes);
    using fromFile = await deserializeEngine(await Deno.readFile(path), { device: "cpu" });
    // The same plan 3 bytes into a bigger buffer: weight views need a realigned copy.
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    using fromView = await deserializeEngine(shifted.subarray(3), { device: "cpu" });
    using a = fromFile.createContext();
    using b = fromView.createContext();
    const data = randomArray(2 * 128, rng(8));
    assert.deepEqual(await a.execute({ data }), await b.execute({ data }));
    assert.equal(inspectPlan(shifted.subarray(3)).weightsHash, inspectPlan(bytes).weightsHash);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("inspectPlan reads the header alone, for any device, without loading it", async () => {
  using e = await build();
  const bytes = e.serialize();
  const h = inspectPlan(bytes);
  assert.equal(h.format, PLAN_FORMAT_VERSION);
  assert.equal(h.kilnVersion, KILN_VERSION);
  assert.deepEqual(h.device, e.device);
  assert.equal(h.device.kind, "cpu");
  assert.match(h.irHash, /^[0-9a-f]{64}$/);
  assert.match(h.weightsHash, /^[0-9a-f]{64}$/);
  assert.equal(h.weightsOffset % 64, 0);
  assert.equal(h.weightsOffset + h.weightsBytes + 32, bytes.length);
  assert.ok(h.manifestOffset + h.manifestBytes <= h.weightsOffset);
  assert.equal(h.weightsBytes, e.memory.weightsBytes);
  // A plan for a GPU this machine may not have: the header still reads.
  const { manifest, weights } = readPlan(bytes);
  const gpu = { kind: "cuda" as const, arch: "sm_90", name: "NVIDIA H100" };
  const cudaPlan = writePlan(manifest, weights, gpu, { runtime: 12040, driver: 12080 });
  const hc = inspectPlan(cudaPlan);
  assert.deepEqual(hc.device, gpu);
  assert.deepEqual(hc.cuda, { runtime: 12040, driver: 12080 });
  // inspectPlan does not read the manifest: a plan whose weights are corrupt still inspects.
  const corrupt = cudaPlan.slice();
  corrupt[hc.weightsOffset] ^= 1;
  assert.deepEqual(inspectPlan(corrupt), hc);
});

Deno.test("a plan for another device is refused with PLAN_DEVICE", async () => {
  using e = await build();
  const { manifest, weights } = readPlan(e.serialize());
  const devices = [
    { kind: "cuda" as const, arch: "sm_90", name: "NVIDIA H100" },
    { kind: "cpu" as const, arch: "cpu-simd", name: "some other CPU backend" },
  ];
  for (const device of devices) {
    const bytes = writePlan(manifest, weights, device);
    await assert.rejects(
      () => deserializeEngine(bytes, { device: "cpu" }),
      planError("PLAN_DEVICE", new RegExp(`built for ${device.kind} \\(${device.arch}`)),
    );
  }
});

Deno.test("a plan from another format or Kiln version is refused with PLAN_VERSION", async () => {
  using e = await build();
  const bytes = e.serialize();
  // The version prefix patched in place (the reader checks it before the checksum).
  const patched = bytes.slice();
  new DataView(patched.buffer).setUint32(8, PLAN_FORMAT_VERSION + 1, true);
  await assert.rejects(
    () => deserializeEngine(patched, { device: "cpu" }),
    planError("PLAN_VERSION", new RegExp(`plan format version ${PLAN_FORMAT_VERSION + 1}`)),
  );
  assert.throws(() => inspectPlan(resum(patched)), planError("PLAN_VERSION"));
  // Another Kiln version in the header, with a valid checksum.
  const parts = splitPlan(bytes);
  const older = assemblePlan(parts, { editHeader: (h) => ({ ...h, kilnVersion: "0.0.1" }) });
  await assert.rejects(
    () => deserializeEngine(older, { device: "cpu" }),
    planError("PLAN_VERSION", /built by Kiln 0\.0\.1; this is Kiln/),
  );
  // Header and prefix disagreeing on the format.
  const disagree = assemblePlan(parts, { editHeader: (h) => ({ ...h, format: 7 }) });
  assert.throws(() => inspectPlan(disagree), planError("PLAN_INVALID", /header says format 7/));
  // The crafting itself is sound: reassembling without edits gives a loadable plan.
  using again = await deserializeEngine(assemblePlan(parts), { device: "cpu" });
  assert.equal(again.layers.length, e.layers.length);
});

Deno.test("corrupt, truncated and foreign files are refused with PLAN_INVALID and an offset", async () => {
  using e = await build();
  const bytes = e.serialize();
  const h = inspectPlan(bytes);
  const cases: [Uint8Array, RegExp][] = [
    [
      new TextEncoder().encode("definitely not a plan, but long enough to have a magic"),
      /bad magic/,
    ],
    [bytes.subarray(0, 200), /header length .* runs past the end/],
    [bytes.subarray(0, bytes.length - 1), /does not end where the checksum starts|checksum/],
    [new Uint8Array(10), /too short to be a plan/],
  ];
  const flipped = bytes.slice();
  flipped[h.manifestOffset + 5] ^= 0x10;
  cases.push([flipped, /checksum mismatch/]);
  for (const [b, pattern] of cases) {
    await assert.rejects(() => deserializeEngine(b, { device: "cpu" }), (err: unknown) => {
      planError("PLAN_INVALID", pattern)(err);
      assert.equal(typeof (err as KilnError).offset, "number");
      return true;
    });
  }
  await assert.rejects(
    () => deserializeEngine([1, 2, 3] as never, { device: "cpu" }),
    planError("INVALID_ARGUMENT", /expects the plan as a Uint8Array/),
  );
});
