/**
 * The MNIST examples, called in-process on the CPU. mnist_api and mlp read NVIDIA's TensorRT
 * sample data from ../shared/data and are skipped (with a note) where it is absent; mnist_zoo
 * runs on the data shipped in data/ only.
 */
import assert from "node:assert/strict";
import { KilnError } from "../../errors.ts";
import { Logger } from "../../runtime/logger.ts";
import { classifyDigits as classifyWithApi, main as mainApi } from "../../examples/mnist_api.ts";
import { classifyDigits as classifyWithMlp } from "../../examples/mlp.ts";
import { classifyTestSet, main as mainZoo, MIN_ACCURACY } from "../../examples/mnist_zoo.ts";
import { asciiArt, readIdxGz, readPgm } from "../../examples/_pgm.ts";
import { transpose } from "../../examples/_common.ts";

const SHARED = new URL("../../../shared/data", import.meta.url).pathname;
const hasShared = (() => {
  try {
    return Deno.statSync(`${SHARED}/wts/mnistapi.wts`).isFile;
  } catch {
    return false;
  }
})();
if (!hasShared) {
  console.log(`note: ${SHARED} is absent; the mnist_api and mlp example tests are skipped`);
}

const quiet = { device: "cpu" as const, log: () => {}, logger: new Logger("error") };

Deno.test("mnist_api (sampleMNISTAPI) classifies all ten pgm digits", {
  ignore: !hasShared,
}, async () => {
  const r = await classifyWithApi(quiet);
  assert.deepEqual(r.predictions, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(r.correct, 10);
});

Deno.test("mlp (sampleMLP) classifies all ten pgm digits", { ignore: !hasShared }, async () => {
  const r = await classifyWithMlp(quiet);
  assert.deepEqual(r.predictions, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(r.correct, 10);
});

// The misclassified images among the first 1,000, from a direct numpy forward pass of the same
// weights (conv/ReLU/maxpool by im2col and einsum; the smallest top-1/top-2 logit margin over the
// 1,000 images is 0.0079, far above float32 rounding, so the list is exact on any correct CPU).
const NUMPY_WRONG = [62, 92, 247, 266, 445, 449, 495, 619, 659, 684, 726, 740, 844, 882, 947, 965];

Deno.test("mnist_zoo classifies the shipped 1,000 MNIST test digits as a direct forward pass does", async () => {
  const r = await classifyTestSet({ ...quiet, batch: 100 });
  assert.equal(r.total, 1000);
  assert.deepEqual(r.wrong, NUMPY_WRONG);
  assert.equal(r.correct, 984);
  assert.ok(r.accuracy >= MIN_ACCURACY, `accuracy ${r.accuracy}`);
});

Deno.test("mnist_zoo gives the same answers with a batch that leaves a partial last batch", async () => {
  const r = await classifyTestSet({ ...quiet, batch: 384, show: 0 });
  assert.deepEqual(r.wrong, NUMPY_WRONG);
});

Deno.test("the examples' main() reports bad flags and absent data by exit code", async () => {
  const errors: string[] = [];
  const original = console.error;
  console.error = (...a: unknown[]) => errors.push(a.join(" "));
  try {
    assert.equal(await mainZoo(["--bogus=1"]), 2);
    assert.equal(await mainZoo(["--batch=0"]), 2);
    assert.equal(await mainApi(["--wts=/nonexistent/mnistapi.wts"]), 77);
  } finally {
    console.error = original;
  }
  assert.match(errors[0], /unknown argument "--bogus=1"/);
  assert.match(errors[1], /--batch must be a positive integer/);
  assert.match(errors[2], /not found: \/nonexistent\/mnistapi.wts/);
});

Deno.test("readPgm and readIdxGz refuse malformed files with a KilnError naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pgm = `${dir}/x.pgm`;
    const latin1 = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
    await Deno.writeFile(pgm, latin1("P5\n# comment\n2 2\n255\n\x00\xff\x80"));
    await assert.rejects(
      () => readPgm(pgm),
      (e: unknown) =>
        e instanceof KilnError && e.code === "PARSE_ERROR" && e.file === pgm &&
        /need 4 bytes; 3 remain/.test(e.message),
    );
    await Deno.writeFile(pgm, latin1("P2\n2 2\n255\n"));
    await assert.rejects(() => readPgm(pgm), /not a binary PGM/);
    await Deno.writeFile(pgm, latin1("P5 2 1 255\n\x00\xff"));
    const img = await readPgm(pgm);
    assert.deepEqual([img.width, img.height, ...img.pixels], [2, 1, 0, 255]);
    assert.deepEqual(asciiArt(img, true), ["@ "]);
    assert.deepEqual(asciiArt(img, false), [" @"]);

    const idx = `${dir}/x.gz`;
    const gz = async (b: number[]) =>
      new Uint8Array(
        await new Response(
          new Blob([new Uint8Array(b)]).stream().pipeThrough(new CompressionStream("gzip")),
        ).arrayBuffer(),
      );
    await Deno.writeFile(idx, await gz([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3]));
    await assert.rejects(() => readIdxGz(idx), /need 4 bytes of data; 3 follow/);
    await Deno.writeFile(idx, await gz([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]));
    assert.deepEqual(await readIdxGz(idx), { dims: [2], data: new Uint8Array([7, 9]) });
    await Deno.writeFile(idx, new Uint8Array([1, 2, 3]));
    await assert.rejects(() => readIdxGz(idx), /not a gzip file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("transpose turns TensorFlow's [in, out] into [out, in]", () => {
  // [[1, 2, 3], [4, 5, 6]] → [[1, 4], [2, 5], [3, 6]]
  assert.deepEqual([...transpose(new Float32Array([1, 2, 3, 4, 5, 6]), 2, 3)], [1, 4, 2, 5, 3, 6]);
});
