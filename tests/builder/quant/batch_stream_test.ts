/**
 * TensorRT batch files (int32 N, C, H, W, then float32 data, optionally int32 labels) and the
 * streams over them and over arrays; a fast-check fuzz of mutated files: only KilnErrors.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ArrayBatchStream,
  BatchStream,
  encodeBatchFile,
  parseBatchFile,
} from "../../../builder/quant/batch_stream.ts";
import { KilnError } from "../../../errors.ts";
import { randomArray, rng } from "../../_util.ts";

const SSD =
  new URL("../../../../shared/data/int8/ssd_batches/batch_calibration0.batch", import.meta.url)
    .pathname;
const hasSsd = (() => {
  try {
    return Deno.statSync(SSD).isFile;
  } catch {
    return false;
  }
})();

/** A batch file's bytes written here with a DataView, independently of encodeBatchFile. */
function fileBytes(dims: number[], data: Float32Array, labels?: number[]): Uint8Array {
  const bytes = new Uint8Array(16 + 4 * data.length + 4 * (labels?.length ?? 0));
  const v = new DataView(bytes.buffer);
  dims.forEach((d, i) => v.setInt32(4 * i, d, true));
  data.forEach((x, i) => v.setFloat32(16 + 4 * i, x, true));
  labels?.forEach((l, i) => v.setInt32(16 + 4 * data.length + 4 * i, l, true));
  return bytes;
}

Deno.test("parseBatchFile reads N,C,H,W, the data and the optional labels; encodeBatchFile writes the same bytes", () => {
  const data = randomArray(2 * 3 * 2 * 2, rng(1));
  const withLabels = fileBytes([2, 3, 2, 2], data, [7, -1]);
  const b = parseBatchFile(withLabels);
  assert.deepEqual(b.dims, [2, 3, 2, 2]);
  assert.deepEqual(b.data, data);
  assert.deepEqual(b.labels, new Int32Array([7, -1]));
  assert.deepEqual(encodeBatchFile(b), withLabels);
  const plain = parseBatchFile(fileBytes([2, 3, 2, 2], data));
  assert.equal(plain.labels, undefined);
});

Deno.test("malformed batch files are KilnErrors with the file and the byte offset", () => {
  const data = new Float32Array(12).fill(0.5);
  const cases: [Uint8Array, number, RegExp][] = [
    [new Uint8Array(10), 10, /header alone .* needs 16/],
    [fileBytes([1, 0, 2, 2], new Float32Array(0)), 4, /C is 0/],
    [fileBytes([-3, 1, 1, 1], new Float32Array(0)), 0, /N is -3/],
    [fileBytes([1, 3, 2, 2], data).subarray(0, 40), 40, /needs 64 \(no labels\) or 68/],
    [fileBytes([1 << 20, 1 << 10, 1 << 10, 1], new Float32Array(0)), 0, /claims .* floats/],
    [fileBytes([1, 3, 2, 2], data.map((v, i) => (i === 5 ? NaN : v))), 36, /value 5 is NaN/],
  ];
  for (const [bytes, offset, re] of cases) {
    assert.throws(
      () => parseBatchFile(bytes, "b.batch"),
      (e) =>
        e instanceof KilnError && e.file === "b.batch" && e.offset === offset && re.test(e.message),
      re.source,
    );
  }
});

Deno.test("BatchStream regroups the images of several files into batches and keeps their labels", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln-batches-" });
  try {
    const r = rng(5), size = 2 * 3 * 3;
    const all = randomArray(7 * size, r);
    // Files of 3, 2 and 2 images; labels 100 + image index.
    const split = [[0, 3], [3, 5], [5, 7]];
    split.forEach(([a, b], f) => {
      const labels = Array.from({ length: b - a }, (_, i) => 100 + a + i);
      Deno.writeFileSync(
        `${dir}/batch${f}`,
        fileBytes([b - a, 2, 3, 3], all.subarray(a * size, b * size), labels),
      );
    });
    const stream = BatchStream.numbered(`${dir}/batch`, "", { batchSize: 2, inputName: "img" });
    assert.equal(stream.files.length, 3);
    for (let batch = 0; batch < 3; batch++) {
      const b = stream.next()!;
      assert.deepEqual(Object.keys(b), ["img"]);
      assert.deepEqual(
        b.img,
        all.slice(2 * batch * size, (2 * batch + 2) * size),
        `batch ${batch}`,
      );
      assert.deepEqual(stream.labels, new Int32Array([100 + 2 * batch, 101 + 2 * batch]));
    }
    assert.equal(stream.next(), null, "the 7th image alone is not a batch");
    stream.reset();
    assert.deepEqual(stream.next()!.img, all.slice(0, 2 * size));
    const limited = new BatchStream(stream.files, { batchSize: 3, maxBatches: 1 });
    assert.ok(limited.next());
    assert.equal(limited.next(), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TensorRT's SSD calibration batch file: 1×3×300×300 floats, no labels", {
  ignore: !hasSsd,
}, () => {
  const s = new BatchStream([SSD], { batchSize: 1 });
  const b = s.next()!;
  assert.equal(b.data.length, 3 * 300 * 300);
  assert.equal(s.labels, undefined);
  assert.ok(b.data.every(Number.isFinite));
  assert.equal(s.next(), null);
});

Deno.test("ArrayBatchStream cuts arrays into batches of items; bad arrays are KilnErrors naming them", () => {
  const x = randomArray(5 * 4, rng(2)), y = randomArray(5 * 2, rng(3));
  const s = new ArrayBatchStream({ x, y }, { batchSize: 2, count: 5 });
  const b0 = s.next()!, b1 = s.next()!;
  assert.deepEqual(b0.x, x.slice(0, 8));
  assert.deepEqual(b1.y, y.slice(4, 8));
  assert.equal(s.next(), null);
  s.reset();
  assert.deepEqual(s.next()!.x, x.slice(0, 8));
  assert.throws(
    () => new ArrayBatchStream({ x: new Float32Array(7) }, { batchSize: 1, count: 2 }),
    (e) => e instanceof KilnError && e.tensor === "x",
  );
  assert.throws(() => new ArrayBatchStream({ x }, { batchSize: 0, count: 5 }), KilnError);
});

Deno.test("fuzz: 600 mutated batch files parse or throw a KilnError, never anything else", () => {
  const base = fileBytes([2, 1, 3, 3], randomArray(18, rng(9)), [1, 2]);
  let parsed = 0, refused = 0;
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({
            kind: fc.constant("set"),
            at: fc.nat(),
            value: fc.integer({ min: 0, max: 255 }),
          }),
          fc.record({ kind: fc.constant("truncate"), at: fc.nat() }),
          fc.record({
            kind: fc.constant("insert"),
            at: fc.nat(),
            value: fc.integer({ min: 0, max: 255 }),
          }),
          fc.record({
            kind: fc.constant("dim"),
            at: fc.integer({ min: 0, max: 3 }),
            value: fc.integer(),
          }),
        ),
        { minLength: 1, maxLength: 4 },
      ),
      (edits) => {
        let bytes = base.slice();
        for (const e of edits) {
          const at = bytes.length ? e.at % (bytes.length + 1) : 0;
          if (e.kind === "set" && at < bytes.length) bytes[at] = e.value!;
          else if (e.kind === "truncate") bytes = bytes.slice(0, at);
          else if (e.kind === "insert") {
            bytes = new Uint8Array([...bytes.subarray(0, at), e.value!, ...bytes.subarray(at)]);
          } else if (e.kind === "dim" && bytes.length >= 16) {
            new DataView(bytes.buffer).setInt32(4 * e.at, e.value!, true);
          }
        }
        try {
          const b = parseBatchFile(bytes, "fuzz.batch");
          assert.equal(b.data.length, b.dims.reduce((a, d) => a * d, 1));
          parsed++;
        } catch (err) {
          if (!(err instanceof KilnError) || err.code !== "PARSE_ERROR") throw err;
          assert.equal(err.file, "fuzz.batch");
          assert.ok(err.offset !== undefined && err.offset >= 0 && err.offset <= bytes.length);
          refused++;
        }
      },
    ),
    { numRuns: 600, seed: 42 },
  );
  assert.equal(parsed + refused, 600);
  assert.ok(parsed > 0 && refused > 0, `parsed ${parsed}, refused ${refused}`);
});
