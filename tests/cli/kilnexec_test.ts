/**
 * cli/kilnexec.ts: flags to engine to timings and outputs. Numbers are checked against the
 * float64 reference evaluator of the ONNX conformance tests (tests/parsers/onnx/_reference.ts);
 * a saved plan reloaded with --loadEngine gives the same outputs bit for bit; bad flags give the
 * usage and exit 2, bad input a KilnError naming the file or tensor.
 */
import assert from "node:assert/strict";
import { kilnexec } from "../../cli/kilnexec.ts";
import * as kiln from "../../mod.ts";
import { KilnError } from "../../mod.ts";
import { evaluate } from "../parsers/onnx/_reference.ts";
import { assertClose, randomArray, rng } from "../_util.ts";

const CLI = new URL("../../cli/kilnexec.ts", import.meta.url).pathname;
const MNIST_ONNX = decodeURIComponent(
  new URL("../../data/onnx/mnist-8.onnx", import.meta.url).pathname,
);

// A LeNet-like deploy prototxt (no caffemodel: kilnexec draws random weights).
const PROTOTXT = `name: "tiny"
input: "data"
input_shape { dim: 1 dim: 1 dim: 12 dim: 12 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
  inner_product_param { num_output: 10 } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
`;

function quiet(): { lines: string[]; out: (l: string) => void } {
  const lines: string[] = [];
  return { lines, out: (l) => lines.push(l) };
}

Deno.test("kilnexec --onnx with --loadInputs: outputs equal the float64 reference", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const input = randomArray(28 * 28, rng(7), 0, 1);
    await Deno.writeTextFile(`${dir}/x.json`, JSON.stringify(Array.from(input)));
    const { lines, out } = quiet();
    const r = await kilnexec([
      `--onnx=${MNIST_ONNX}`,
      "--device=cpu",
      "--iterations=3",
      "--avgRuns=2",
      `--loadInputs=Input3:${dir}/x.json`,
      `--exportOutput=${dir}/out.json`,
    ], out);
    assert.equal(r.iterationsMs.length, 3);
    assert.ok(r.iterationsMs.every((ms) => ms > 0 && Number.isFinite(ms)));
    assert.equal(lines.filter((l) => l.startsWith("Average over 2 runs")).length, 3);
    const want = evaluate(MNIST_ONNX, {
      Input3: { dims: [1, 1, 28, 28], data: Float64Array.from(input) },
    }).Plus214_Output_0;
    const exported = JSON.parse(await Deno.readTextFile(`${dir}/out.json`));
    assert.deepEqual(Object.keys(exported), ["Plus214_Output_0"]);
    // float32 sums of up to 400 products against float64 ones, logits of order 10.
    assertClose(Float32Array.from(exported.Plus214_Output_0), want.data, {
      rtol: 1e-4,
      atol: 1e-4,
    }, "exported logits");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kilnexec --deploy: random weights, --engine then --loadEngine gives the same outputs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/tiny.prototxt`, PROTOTXT);
    const built = await kilnexec([
      `--deploy=${dir}/tiny.prototxt`,
      "--output=prob",
      "--batch=3",
      "--device=cpu",
      "--iterations=2",
      "--avgRuns=1",
      `--engine=${dir}/tiny.plan`,
      "--profile",
      `--exportProfile=${dir}/profile.json`,
    ], quiet().out);
    const prob = built.outputs.prob as Float32Array;
    assert.equal(prob.length, 30);
    for (let b = 0; b < 3; b++) {
      const sum = prob.slice(b * 10, b * 10 + 10).reduce((a, v) => a + v, 0);
      assert.ok(Math.abs(sum - 1) < 1e-5, `softmax row ${b} sums to ${sum}`);
    }
    const profile = JSON.parse(await Deno.readTextFile(`${dir}/profile.json`));
    const names = profile.layers?.map((l: { layer: string }) => l.layer) ??
      profile.map((l: { layer: string }) => l.layer);
    assert.ok(names.some((n: string) => n.includes("conv1")), `profile names: ${names}`);

    const loaded = await kilnexec([
      `--loadEngine=${dir}/tiny.plan`,
      "--batch=3",
      "--device=cpu",
      "--iterations=1",
      "--avgRuns=1",
    ], quiet().out);
    assert.deepEqual(loaded.outputs.prob, prob);
    await assert.rejects(
      kilnexec([`--loadEngine=${dir}/tiny.plan`, "--batch=4", "--device=cpu"], quiet().out),
      (e) => e instanceof KilnError && /maxBatchSize 3/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kilnexec refuses bad input with a KilnError naming the blob, tensor or file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/tiny.prototxt`, PROTOTXT);
    await assert.rejects(
      kilnexec([`--deploy=${dir}/tiny.prototxt`, "--output=nope", "--device=cpu"], quiet().out),
      (e) => e instanceof KilnError && e.tensor === "nope" && /no blob "nope"/.test(e.message),
    );
    await Deno.writeFile(`${dir}/short.bin`, new Uint8Array(12));
    await assert.rejects(
      kilnexec([
        `--onnx=${MNIST_ONNX}`,
        "--device=cpu",
        `--loadInputs=Input3:${dir}/short.bin`,
      ], quiet().out),
      (e) => e instanceof KilnError && e.tensor === "Input3" && /784 values/.test(e.message),
    );
    await assert.rejects(
      kilnexec([`--loadEngine=${dir}/missing.plan`], quiet().out),
      (e) => e instanceof KilnError && e.file === `${dir}/missing.plan`,
    );
    await Deno.writeTextFile(`${dir}/garbage.plan`, "not a plan at all");
    await assert.rejects(
      kilnexec([`--loadEngine=${dir}/garbage.plan`], quiet().out),
      (e) => e instanceof KilnError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kilnexec as a command: bad flags print the usage and exit 2", async () => {
  for (
    const args of [
      ["--bogus"],
      ["--batch=0", `--onnx=${MNIST_ONNX}`],
      ["--calib=x", `--onnx=${MNIST_ONNX}`],
      [],
      [
        "--deploy=x.prototxt",
      ],
    ]
  ) {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${err}`);
    assert.match(err, /^usage: kilnexec/m);
  }
});

Deno.test("kilnexec --fp16 and --int8 (--ranges, --calib, random-input scales) build and stay close to FP32", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const input = randomArray(28 * 28, rng(11), 0, 1);
    await Deno.writeTextFile(`${dir}/x.json`, JSON.stringify(Array.from(input)));
    const base = [`--onnx=${MNIST_ONNX}`, "--device=cpu", "--iterations=1", "--avgRuns=1"];
    const load = `--loadInputs=Input3:${dir}/x.json`;
    const logits = async (...extra: string[]) =>
      (await kilnexec([...base, load, ...extra], quiet().out)).outputs
        .Plus214_Output_0 as Float32Array;
    const fp32 = await logits();
    const norm = (a: Float32Array, b: Float32Array) =>
      Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0) / b.reduce((s, v) => s + v * v, 0));
    // FP16 storage of 4 layers' activations: relative error of a few 1e-4.
    assert.ok(norm(await logits("--fp16"), fp32) < 1e-2);
    // Ranges: each tensor's max |x| on this input (a min-max calibration), as name:value lines.
    const r = await kiln.parseOnnx(MNIST_ONNX);
    const cal = await kiln.calibrate(
      r.network,
      new kiln.MinMaxCalibrator(
        new kiln.ArrayBatchStream({ Input3: input }, { batchSize: 1, count: 1 }),
      ),
    );
    const lines = [...cal.scales].map(([name, scale]) => `${name}:${scale * 127}`);
    await Deno.writeTextFile(`${dir}/ranges.txt`, lines.join("\n") + "\n");
    const int8 = await logits("--int8", `--ranges=${dir}/ranges.txt`);
    assert.ok(norm(int8, fp32) < 0.1, `INT8 vs FP32 normwise error ${norm(int8, fp32)}`);
    assert.notDeepEqual(int8, fp32); // INT8 really ran
    const random = await logits("--int8");
    assert.equal(random.length, 10);

    await Deno.writeTextFile(`${dir}/bad.cache`, "KILN-1-EntropyCalibration2\nconv: zz\n");
    await assert.rejects(
      kilnexec([...base, "--int8", `--calib=${dir}/bad.cache`], quiet().out),
      (e) => e instanceof KilnError && e.file === `${dir}/bad.cache` && e.line === 2,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
