/**
 * bench/accuracy.ts, reduced: LeNet top-1 on 500 MNIST test images in FP32, FP16 and INT8
 * (calibrated on 100), and CharRNN FP16 vs FP32 for 200 characters. Reads the NVIDIA sample
 * data from ../shared/data; skipped when it is absent (the script then exits 77).
 */
import assert from "node:assert/strict";
import {
  charRnnFp16,
  googLeNetFp16,
  hasMnistData,
  main,
  mnistAccuracy,
} from "../../bench/accuracy.ts";

const DATA = "../shared/data";
const present = hasMnistData(DATA);

Deno.test({
  name:
    "accuracy: LeNet FP16 and INT8 (minmax) within 0.5% of FP32 on 500 images; INT8 layers really used",
  ignore: !present,
  fn: async () => {
    const rows = await mnistAccuracy({
      data: DATA,
      calibrate: 100,
      evaluate: 500,
      batch: 100,
      log: () => {},
    });
    const [fp32, fp16, entropy, minmax] = rows;
    assert.equal(fp32.precision, "fp32");
    assert.ok(fp32.top1 > 97, `FP32 top-1 ${fp32.top1}%: the input is not what the model expects`);
    assert.ok(Math.abs(fp16.top1 - fp32.top1) <= 0.5, `FP16 ${fp16.top1}% vs FP32 ${fp32.top1}%`);
    assert.ok(Math.abs(minmax.top1 - fp32.top1) <= 0.5, `INT8 ${minmax.top1}% vs ${fp32.top1}%`);
    // Entropy calibration on 100 images is reported, not held to 0.5% (on 1,000 it is: -0.07%).
    assert.ok(entropy.top1 > 95, `INT8 (entropy2) ${entropy.top1}%`);
    assert.equal(fp16.layers.fp32 ?? 0, 0);
    assert.equal(minmax.layers.int8, 4, JSON.stringify(minmax.layers));
  },
});

Deno.test("accuracy: CharRNN FP16 generates the same 200 characters as FP32", async () => {
  const c = await charRnnFp16("ROMEO:\n", 200);
  assert.equal(c.identicalPrefix, 200, `FP32: ${c.fp32}\nFP16: ${c.fp16}`);
});

Deno.test("accuracy: GoogLeNet FP16 within 1e-2 relative of FP32 at its output, every layer compared", async () => {
  const g = await googLeNetFp16(DATA);
  if (!g) return; // no deploy.prototxt under ../shared/data
  assert.ok(g.rows.length > 100 && g.rows.every((r) => r.precision === "fp16"));
  assert.ok(g.output.maxRelError > 0 && g.output.maxRelError <= 1e-2, `${g.output.maxRelError}`);
  assert.ok(g.worst.maxRelError < 1e-2, `${g.worst.layer}: ${g.worst.maxRelError}`);
});

Deno.test("accuracy main: 77 without the data, 2 on a bad flag", async () => {
  assert.equal(await main(["--data=/nonexistent-kiln-data"]), 77);
  assert.equal(await main(["--bogus"]), 2);
});
