import assert from "node:assert/strict";
import fc from "fast-check";
import { KilnError } from "../../../errors.ts";
import { crc32c, maskCrc, unmaskCrc } from "../../../parsers/tf/_crc32c.ts";
import {
  type Checkpoint,
  parseCheckpoint,
  readCheckpoint,
} from "../../../parsers/tf/checkpoint.ts";
import { type BundleTensor, bytesOf, repairBlockChecksums, writeBundle } from "./_bundle_writer.ts";

const REPO_PREFIX = new URL("../../../data/charrnn/model-85340", import.meta.url).pathname;
const SHARED = new URL("../../../../shared/data/", import.meta.url);
const SHARED_PREFIX = new URL("charrnn/tf-char-rnn-shakespeare/model-85340", SHARED).pathname;
const hasShared = (() => {
  try {
    Deno.statSync(new URL("SOURCES.md", SHARED));
    return true;
  } catch {
    return false;
  }
})();
if (!hasShared) {
  console.warn("note: ../shared/data is absent; the SOURCES.md comparison is skipped");
}

const MODEL_TENSORS = [
  "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/bias",
  "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel",
  "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/bias",
  "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/kernel",
  "softmax/softmax_b",
  "softmax/softmax_w",
];

function expectKilnError(fn: () => unknown, check: (e: KilnError) => void = () => {}): KilnError {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    check(e);
    return e;
  }
  assert.fail("expected a KilnError");
}

Deno.test("crc32c matches the RFC 3720 test vectors; mask and unmask are inverses", () => {
  assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  for (const v of [0, 1, 0xe3069283, 0xffffffff, 0x12345678]) {
    assert.equal(unmaskCrc(maskCrc(v)), v);
    assert.notEqual(maskCrc(v), v);
  }
});

Deno.test("readCheckpoint reads the char-rnn checkpoint: 27 float32 tensors, the model's six", async () => {
  const ck = await readCheckpoint(REPO_PREFIX);
  assert.deepEqual(ck.header, { numShards: 1, endianness: "little", producer: 1, minConsumer: 0 });
  assert.equal(ck.index.length, 27);
  assert.equal(ck.size, 27);
  assert.deepEqual(ck.skipped, []);
  const shapes = Object.fromEntries(MODEL_TENSORS.map((n) => [n, ck.get(n)?.dims]));
  assert.deepEqual(shapes, {
    "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/bias": [512],
    "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel": [193, 512],
    "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/bias": [512],
    "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/kernel": [256, 512],
    "softmax/softmax_b": [65],
    "softmax/softmax_w": [128, 65],
  });
  for (const t of ck.values()) {
    assert.equal(t.dtype, "float32");
    assert.equal(t.values.length, t.dims.reduce((a, b) => a * b, 1));
  }
  assert.deepEqual(ck.get("global_step")?.dims, []);
  // 85,340 training steps, stored as a float scalar.
  assert.equal(ck.get("global_step")?.values[0], 85340);
  // Only what is asked for is read.
  const some = await readCheckpoint(REPO_PREFIX, { names: MODEL_TENSORS });
  assert.deepEqual([...some.keys()], MODEL_TENSORS);
});

Deno.test(
  "readCheckpoint agrees with SOURCES.md's table and a direct read of the data file",
  { ignore: !hasShared },
  async () => {
    const sources = await Deno.readTextFile(new URL("SOURCES.md", SHARED));
    const section = sources.slice(sources.indexOf("### TensorFlow char-rnn checkpoint"));
    const rows = [...section.matchAll(/^\| ([\w/]+) \| \(([\d, ]*)\) \| (\d+) \| (\d+) \|$/gm)];
    assert.equal(rows.length, 6, "six rows in SOURCES.md's table");
    const ck = await readCheckpoint(SHARED_PREFIX);
    const data = await Deno.readFile(`${SHARED_PREFIX}.data-00000-of-00001`);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (const [, name, shape, offset, size] of rows) {
      const dims = shape.split(",").map((s) => s.trim()).filter((s) => s).map(Number);
      const entry = ck.index.find((e) => e.name === name);
      assert.ok(entry, name);
      assert.deepEqual(
        [entry.dims, entry.offset, entry.size, entry.shard],
        [dims, Number(offset), Number(size), 0],
        name,
      );
      const values = ck.get(name)!.values;
      for (let i = 0; i < values.length; i++) {
        const direct = view.getFloat32(Number(offset) + 4 * i, true);
        if (values[i] !== direct) assert.fail(`${name}[${i}] = ${values[i]}, file has ${direct}`);
      }
    }
    // The repository's copy is the same checkpoint, byte for byte.
    const repo = await Deno.readFile(`${REPO_PREFIX}.data-00000-of-00001`);
    assert.equal(crc32c(repo), crc32c(data));
    assert.equal(repo.length, data.length);
  },
);

Deno.test("readCheckpoint names the file, tensor and offset of a corrupted tensor", async () => {
  const index = await Deno.readFile(`${REPO_PREFIX}.index`);
  const data = await Deno.readFile(`${REPO_PREFIX}.data-00000-of-00001`);
  data[6156 + 1000] ^= 0x01; // inside cell_0's kernel
  expectKilnError(() => parseCheckpoint(index, [data], { prefix: "m" }), (e) => {
    assert.equal(e.code, "PARSE_ERROR");
    assert.equal(e.file, "m.data-00000-of-00001");
    assert.equal(e.tensor, "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel");
    assert.equal(e.offset, 6156);
    assert.match(e.message, /checksum mismatch/);
  });
  // Tensors not asked for are not checked.
  const ok = parseCheckpoint(index, [data], { names: ["softmax/softmax_w"] });
  assert.equal(ok.size, 1);
  data[6156 + 1000] ^= 0x01;
  expectKilnError(
    () => parseCheckpoint(index, [data.subarray(0, 2_000_000)], { prefix: "m" }),
    (e) => {
      // The first tensor, in name order, that ends past byte 2,000,000.
      assert.equal(e.tensor, "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/kernel/Adam");
      assert.equal(e.offset, 1722380);
      assert.match(e.message, /run past the end of the shard \(2000000 bytes/);
    },
  );
  expectKilnError(() => parseCheckpoint(index.subarray(0, 1000), [data]), (e) => {
    assert.equal(e.file, "checkpoint.index");
    assert.match(e.message, /magic/);
  });
  expectKilnError(() => parseCheckpoint(index, [data, data]), (e) => {
    assert.equal(e.code, "INVALID_ARGUMENT");
  });
  expectKilnError(() => parseCheckpoint(index, [data], { names: ["rnn/nope"] }), (e) => {
    assert.equal(e.code, "INVALID_ARGUMENT");
    assert.equal(e.tensor, "rnn/nope");
  });
  await assert.rejects(readCheckpoint("/nonexistent/model-1"), (e: unknown) => {
    assert.ok(e instanceof KilnError);
    assert.equal(e.code, "IO_ERROR");
    assert.equal(e.file, "/nonexistent/model-1.index");
    return true;
  });
});

/** Tensors of every readable dtype, plus names sharing long prefixes across many blocks. */
function sampleTensors(): BundleTensor[] {
  const f32 = Float32Array.from({ length: 12 }, (_, i) => (i - 5.5) / 3);
  const t: BundleTensor[] = [
    { name: "a/float", dtype: 1, dims: [3, 4], bytes: bytesOf(f32, 4) },
    {
      name: "a/double",
      dtype: 2,
      dims: [2, 3],
      bytes: bytesOf(Float64Array.of(1e-300, -2.5, 3, 4, 5, Math.PI), 8),
    },
    {
      name: "a/int32",
      dtype: 3,
      dims: [5],
      bytes: bytesOf(Int32Array.of(-7, 0, 1, 2 ** 31 - 1, -(2 ** 31)), 4),
    },
    {
      name: "a/int64",
      dtype: 9,
      dims: [2, 2],
      bytes: bytesOf(BigInt64Array.of(-1n, 2n ** 62n, 0n, 42n), 8),
    },
    {
      name: "b/half",
      dtype: 19,
      dims: [4],
      bytes: bytesOf(Uint16Array.of(0x3c00, 0xc000, 0x7bff, 1), 2),
    },
    { name: "b/bool", dtype: 10, dims: [3], bytes: Uint8Array.of(1, 0, 1) },
    { name: "b/int8", dtype: 6, dims: [2], bytes: Uint8Array.of(0x80, 0x7f) },
    { name: "b/uint8", dtype: 4, dims: [2], bytes: Uint8Array.of(0x80, 0x7f) },
    { name: "c/scalar", dtype: 1, dims: [], bytes: bytesOf(Float32Array.of(0.25), 4) },
    { name: "c/empty", dtype: 1, dims: [0, 5], bytes: new Uint8Array(0) },
    { name: "d/string", dtype: 7, dims: [1], bytes: Uint8Array.of(2, 0, 0, 0, 0, 104, 105) },
    {
      name: "e/other_shard",
      dtype: 1,
      dims: [2],
      bytes: bytesOf(Float32Array.of(7, 8), 4),
      shard: 1,
    },
  ];
  for (let i = 0; i < 30; i++) {
    const v = Float32Array.from({ length: 3 }, (_, j) => i + j / 4);
    t.push({
      name: `layer_${String(i).padStart(2, "0")}/kernel`,
      dtype: 1,
      dims: [3],
      bytes: bytesOf(v, 4),
    });
  }
  return t;
}

function checkSampleValues(ck: Checkpoint) {
  const values = (name: string) => Array.from(ck.get(name)!.values as ArrayLike<number>);
  assert.deepEqual(
    values("a/float"),
    Array.from({ length: 12 }, (_, i) => Math.fround((i - 5.5) / 3)),
  );
  assert.deepEqual(ck.get("a/double")!.dims, [2, 3]);
  assert.deepEqual(values("a/double"), [1e-300, -2.5, 3, 4, 5, Math.PI]);
  assert.deepEqual(values("a/int32"), [-7, 0, 1, 2 ** 31 - 1, -(2 ** 31)]);
  assert.deepEqual(Array.from(ck.get("a/int64")!.values as BigInt64Array), [
    -1n,
    2n ** 62n,
    0n,
    42n,
  ]);
  assert.equal(ck.get("a/int64")!.dtype, "int64");
  assert.deepEqual(values("b/half"), [0x3c00, 0xc000, 0x7bff, 1]);
  assert.equal(ck.get("b/half")!.dtype, "float16");
  assert.deepEqual([ck.get("b/bool")!.dtype, ...ck.get("b/bool")!.values], ["bool", 1, 0, 1]);
  assert.deepEqual(values("b/int8"), [-128, 127]);
  assert.deepEqual(values("b/uint8"), [128, 127]);
  assert.deepEqual([ck.get("c/scalar")!.dims, values("c/scalar")], [[], [
    0.25,
  ]]);
  assert.deepEqual([ck.get("c/empty")!.dims, ck.get("c/empty")!.values.length], [[0, 5], 0]);
  assert.deepEqual(values("e/other_shard"), [7, 8]);
  assert.deepEqual(values("layer_29/kernel"), [29, 29.25, 29.5]);
  assert.equal(ck.has("d/string"), false);
  assert.deepEqual(ck.skipped.map((s) => s.name), ["d/string"]);
  assert.match(ck.skipped[0].reason, /DT_STRING/);
  assert.equal(ck.size, sampleTensors().length - 1);
}

Deno.test("parseCheckpoint reads every dtype across shards, blocks and restart points", () => {
  const b = writeBundle(sampleTensors(), { numShards: 2, blockSize: 200, restartInterval: 3 });
  assert.ok(b.blocks.length > 5, `${b.blocks.length} blocks`);
  checkSampleValues(parseCheckpoint(b.index, b.shards));
  // One block with no prefix compression reads the same.
  const flat = writeBundle(sampleTensors(), {
    numShards: 2,
    blockSize: 1 << 20,
    restartInterval: 1,
  });
  checkSampleValues(parseCheckpoint(flat.index, flat.shards));
});

Deno.test("parseCheckpoint byte-swaps a big-endian bundle", () => {
  const tensors = sampleTensors().map((t) => {
    const width = ({ 1: 4, 2: 8, 3: 4, 9: 8, 19: 2 } as Record<number, number>)[t.dtype] ?? 1;
    return { ...t, bytes: bytesOf(t.bytes, width, true) };
  });
  const b = writeBundle(tensors, { numShards: 2, bigEndian: true, blockSize: 300 });
  const ck = parseCheckpoint(b.index, b.shards);
  assert.equal(ck.header.endianness, "big");
  checkSampleValues(ck);
});

Deno.test("parseCheckpoint refuses bad sizes, checksums and Snappy blocks", () => {
  const one = (t: Partial<BundleTensor>, opts = {}) =>
    writeBundle([{ name: "w", dtype: 1, dims: [2, 3], bytes: new Uint8Array(24), ...t }], opts);
  let b = one({ bytes: new Uint8Array(20) });
  expectKilnError(() => parseCheckpoint(b.index, b.shards, { prefix: "p" }), (e) => {
    assert.deepEqual([e.code, e.file, e.tensor, e.offset], [
      "PARSE_ERROR",
      "p.data-00000-of-00001",
      "w",
      0,
    ]);
    assert.match(e.message, /20 bytes stored for a float32 tensor of shape \[2, 3\]/);
  });
  // A shape whose element count overflows is refused before anything is allocated.
  b = one({ dims: [2 ** 40, 2 ** 40, 2 ** 40] });
  expectKilnError(
    () => parseCheckpoint(b.index, b.shards),
    (e) => assert.match(e.message, /more than 6 elements/),
  );
  b = one({ crcOverride: 12345 });
  expectKilnError(
    () => parseCheckpoint(b.index, b.shards),
    (e) => assert.match(e.message, /checksum mismatch/),
  );
  b = one({}, { compression: 1 });
  expectKilnError(() => parseCheckpoint(b.index, b.shards), (e) => {
    assert.equal(e.code, "UNSUPPORTED");
    assert.match(e.message, /Snappy/);
  });
  b = one({ dtype: 42 });
  assert.deepEqual(parseCheckpoint(b.index, b.shards).skipped.map((s) => s.reason), [
    "dtype DataType 42 not read (Kiln reads float32/64, float16, int8/32/64, uint8 and bool)",
  ]);
});

type Mutation =
  | { kind: "flip"; edits: { at: number; byte: number }[] }
  | { kind: "truncate"; at: number }
  | { kind: "extend"; bytes: Uint8Array }
  | { kind: "zero"; at: number; len: number }
  | { kind: "insert"; at: number; bytes: Uint8Array };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant("flip" as const),
    edits: fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), {
      minLength: 1,
      maxLength: 4,
    }),
  }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("extend" as const),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({
    kind: fc.constant("zero" as const),
    at: fc.nat(),
    len: fc.integer({ min: 1, max: 64 }),
  }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
);

function mutate(src: Uint8Array, m: Mutation): Uint8Array {
  const n = Math.max(src.length, 1);
  switch (m.kind) {
    case "flip": {
      const b = src.slice();
      for (const e of m.edits) if (b.length) b[e.at % n] = e.byte;
      return b;
    }
    case "truncate":
      return src.slice(0, m.at % n);
    case "extend":
      return Uint8Array.from([...src, ...m.bytes]);
    case "zero": {
      const b = src.slice();
      b.fill(0, m.at % n, (m.at % n) + m.len);
      return b;
    }
    case "insert": {
      const at = m.at % n;
      return Uint8Array.from([...src.subarray(0, at), ...m.bytes, ...src.subarray(at)]);
    }
  }
}

/** Runs `fn`; anything thrown but a KilnError fails the property, as does a slow case. */
function refusesOnlyWithKilnError(fn: () => unknown): boolean {
  const t0 = performance.now();
  let ok = true;
  try {
    fn();
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    ok = false;
  }
  const ms = performance.now() - t0;
  if (ms > 2000) throw new Error(`one case took ${ms.toFixed(0)} ms`);
  return ok;
}

let counts = { index: 0, indexRefused: 0, shard: 0, shardRefused: 0 };

Deno.test("fuzz: 1,200 corrupted index files are read or refused with a KilnError", async () => {
  counts = { ...counts, index: 0, indexRefused: 0 };
  const realIndex = await Deno.readFile(`${REPO_PREFIX}.index`);
  const realData = await Deno.readFile(`${REPO_PREFIX}.data-00000-of-00001`);
  const count = (ok: boolean) => {
    counts.index++;
    if (!ok) counts.indexRefused++;
  };
  // The real index as it is: block checksums catch nearly everything.
  fc.assert(
    fc.property(mutationArb, (m) => {
      const bad = mutate(realIndex, m);
      count(
        refusesOnlyWithKilnError(() =>
          parseCheckpoint(bad, [realData], { names: ["softmax/softmax_b"] })
        ),
      );
    }),
    { numRuns: 400, seed: 4001 },
  );
  // Synthetic indexes whose block checksums are repaired after the damage, so the entry,
  // restart and proto decoding behind them is what meets the corruption.
  const b = writeBundle(sampleTensors(), { numShards: 2, blockSize: 200, restartInterval: 3 });
  fc.assert(
    fc.property(mutationArb, (m) => {
      const bad = mutate(b.index, m);
      if (m.kind === "flip" || m.kind === "zero") repairBlockChecksums(bad, b.blocks);
      const ok = refusesOnlyWithKilnError(() => {
        const ck = parseCheckpoint(bad, b.shards);
        for (const t of ck.values()) {
          assert.equal(t.values.length, t.dims.reduce((x, y) => x * y, 1));
        }
      });
      count(ok);
    }),
    { numRuns: 800, seed: 4002 },
  );
  assert.ok(counts.index >= 1000);
  assert.ok(
    counts.indexRefused > counts.index / 2,
    `${counts.indexRefused} of ${counts.index} refused`,
  );
  console.log(
    `index fuzz: ${counts.index} cases, ${counts.indexRefused} refused with KilnError, 0 other errors`,
  );
});

Deno.test("fuzz: 1,200 corrupted data shards are refused exactly when a tensor's bytes changed", async () => {
  counts = { ...counts, shard: 0, shardRefused: 0 };
  /** True when every tensor range of `before` is intact in `after`. */
  const intact = (before: Uint8Array, after: Uint8Array, ranges: [number, number][]) =>
    ranges.every(([o, s]) =>
      after.length >= o + s && before.subarray(o, o + s).every((v, i) => after[o + i] === v)
    );
  const b = writeBundle(sampleTensors(), { numShards: 2, blockSize: 200, restartInterval: 3 });
  const probe = parseCheckpoint(b.index, b.shards);
  const readable = probe.index.filter((e) => probe.has(e.name));
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1 }), mutationArb, (shard, m) => {
      const shards = b.shards.slice();
      shards[shard] = mutate(b.shards[shard], m);
      const ranges = readable.filter((e) => e.shard === shard).map((e) =>
        [e.offset, e.size] as [number, number]
      );
      const ok = refusesOnlyWithKilnError(() => parseCheckpoint(b.index, shards));
      counts.shard++;
      if (!ok) counts.shardRefused++;
      assert.equal(
        ok,
        intact(b.shards[shard], shards[shard], ranges),
        `${m.kind} on shard ${shard}`,
      );
    }),
    { numRuns: 1100, seed: 4003 },
  );
  // The real shard, for the six tensors the model uses.
  const index = await Deno.readFile(`${REPO_PREFIX}.index`);
  const data = await Deno.readFile(`${REPO_PREFIX}.data-00000-of-00001`);
  const model = parseCheckpoint(index, [data], { names: MODEL_TENSORS });
  const ranges = model.index.filter((e) => model.has(e.name)).map((e) =>
    [e.offset, e.size] as [number, number]
  );
  const cheap = mutationArb.filter((m) => m.kind !== "insert" && m.kind !== "extend");
  fc.assert(
    fc.property(cheap, (m) => {
      const bad = mutate(data, m);
      const ok = refusesOnlyWithKilnError(() =>
        parseCheckpoint(index, [bad], { names: MODEL_TENSORS })
      );
      counts.shard++;
      if (!ok) counts.shardRefused++;
      assert.equal(ok, intact(data, bad, ranges), m.kind);
    }),
    { numRuns: 100, seed: 4004 },
  );
  assert.ok(counts.shard >= 1000);
  console.log(
    `shard fuzz: ${counts.shard} cases, ${counts.shardRefused} refused with KilnError, 0 other errors`,
  );
});
