/**
 * The calibration cache: TensorRT's text layout with Kiln's key line, round trips, stale caches
 * (one weight, the data, the algorithm, the structure) rejected with the part that changed,
 * corrupt lines with their line numbers, and TensorRT's own caches read by tensor name.
 */
import assert from "node:assert/strict";
import { ArrayBatchStream } from "../../../builder/quant/batch_stream.ts";
import {
  encodeCalibrationCache,
  float32ToHex,
  hexToFloat32,
  parseCalibrationCache,
} from "../../../builder/quant/cache.ts";
import { calibrate } from "../../../builder/quant/calibrate.ts";
import { EntropyCalibrator2, MinMaxCalibrator } from "../../../builder/quant/calibrator.ts";
import { N, Network } from "../../../dsl/network.ts";
import { KilnError } from "../../../errors.ts";
import { parseCaffe } from "../../../parsers/caffe/mod.ts";
import { MemoryLogger } from "../../../runtime/logger.ts";
import { randomArray, rng } from "../../_util.ts";

const SHARED = new URL("../../../../shared/data/", import.meta.url).pathname;
const exists = (f: string) => {
  try {
    return Deno.statSync(f).isFile;
  } catch {
    return false;
  }
};

function smallNet(weights: Float32Array, extraLayer = false): Network {
  const net = new Network();
  const x = net.input("x", [N, 8]);
  const fc = net.addFullyConnected(x, {
    name: "fc",
    outputs: 4,
    weights,
    bias: new Float32Array(4).fill(0.5),
  });
  let y = net.addActivation(fc.output(0), { name: "relu", type: "relu" }).output(0);
  if (extraLayer) y = net.addActivation(y, { name: "sig", type: "sigmoid" }).output(0);
  net.markOutput(y);
  return net;
}

const W = randomArray(32, rng(1));
const DATA = randomArray(8 * 16, rng(2), -3, 3);
const stream = (data = DATA) =>
  new ArrayBatchStream({ x: data }, { batchSize: 4, count: data.length / 8 });

Deno.test("encode → parse round-trips scales bit for bit, with TensorRT's hex of the float32 bits", () => {
  const scales = new Map([["data", 1 / 127], ["conv1", 0.0281], ["a:0", 3.5e-8], [
    "gpu_0/res2",
    12.25,
  ]]);
  const key = { structure: "s1", weights: "w1", algorithm: "entropy2", data: "d1" };
  const bytes = encodeCalibrationCache("entropy2", key, scales);
  const text = new TextDecoder().decode(bytes);
  assert.match(
    text,
    /^KILN-\d+\.\d+\.\d+-EntropyCalibration2\nkiln-key structure=s1 weights=w1 algorithm=entropy2 data=d1\n/,
  );
  // 1/127 in float32 is 0x3c010204 (TensorRT's line for a softmax output).
  assert.match(text, /\ndata: 3c010204\n/);
  const c = parseCalibrationCache(bytes);
  assert.deepEqual(c.key, key);
  assert.equal(c.algorithm, "entropy2");
  assert.deepEqual([...c.scales.keys()], [...scales.keys()]);
  for (const [n, s] of scales) assert.equal(c.scales.get(n), Math.fround(s), n);
  assert.equal(hexToFloat32(float32ToHex(0.0281)), Math.fround(0.0281));
});

Deno.test("a second calibration with the same network, weights, algorithm and data uses the cache; the file is written atomically", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln-calib-" });
  try {
    const cachePath = `${dir}/net.cache`;
    const first = await calibrate(smallNet(W), new EntropyCalibrator2(stream(), { cachePath }), {
      logger: new MemoryLogger(),
    });
    assert.equal(first.fromCache, false);
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name),
      ["net.cache"],
      "no temporary file left",
    );
    const logger = new MemoryLogger();
    const second = await calibrate(smallNet(W), new EntropyCalibrator2(stream(), { cachePath }), {
      logger,
    });
    assert.equal(second.fromCache, true);
    assert.equal(second.cacheRejected, undefined);
    assert.equal(second.histograms.size, 0, "nothing ran");
    for (const [n, s] of first.scales) assert.equal(second.scales.get(n), Math.fround(s), n);
    // readCache: false recalibrates.
    const again = await calibrate(
      smallNet(W),
      new EntropyCalibrator2(stream(), { cachePath, readCache: false }),
      { logger },
    );
    assert.equal(again.fromCache, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a stale cache is rejected with the part that changed: one weight, the data, the algorithm, the structure", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln-calib-" });
  try {
    const cachePath = `${dir}/net.cache`;
    await calibrate(smallNet(W), new EntropyCalibrator2(stream(), { cachePath }), {
      logger: new MemoryLogger(),
    });
    const original = Deno.readFileSync(cachePath);
    const check = async (
      net: Network,
      calibrator: EntropyCalibrator2 | MinMaxCalibrator,
      reasons: string[],
    ) => {
      Deno.writeFileSync(cachePath, original);
      const logger = new MemoryLogger();
      const r = await calibrate(net, calibrator, { logger });
      assert.equal(r.fromCache, false);
      assert.deepEqual(r.cacheRejected?.reasons, reasons);
      assert.ok(
        logger.messages.some((m) =>
          m.severity === "warning" && m.message.includes(`changed: ${reasons.join(", ")}`) &&
          m.message.includes(cachePath)
        ),
        JSON.stringify(logger.messages),
      );
      // The cache was rewritten for what was calibrated now.
      assert.notDeepEqual(Deno.readFileSync(cachePath), original);
    };
    const oneWeight = W.slice();
    oneWeight[17] += 1e-3;
    await check(smallNet(oneWeight), new EntropyCalibrator2(stream(), { cachePath }), ["weights"]);
    const otherData = DATA.slice();
    otherData[100] = 2.5;
    await check(smallNet(W), new EntropyCalibrator2(stream(otherData), { cachePath }), ["data"]);
    await check(smallNet(W), new MinMaxCalibrator(stream(), { cachePath }), ["algorithm"]);
    await check(smallNet(W, true), new EntropyCalibrator2(stream(), { cachePath }), ["structure"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("corrupt cache lines are KilnErrors with their line number", () => {
  const head =
    "KILN-0.1.0-MinMaxCalibration\nkiln-key structure=a weights=b algorithm=minmax data=c\n";
  const cases: [string, number, RegExp][] = [
    ["garbage\n", 1, /expected a header/],
    [head + "data: 3c010204\nconv1 3c010204\n", 4, /expected "tensor: <hex float32 bits>"/],
    [head + "data: xyz\n", 3, /must be 1 to 8 hex digits/],
    [head + "data: 7f800000\n", 3, /scale of tensor "data" is Infinity/],
    [head + "data: 7fc00000\n", 3, /is NaN/],
    [head + "data: 0\n", 3, /is 0; a scale must be finite and positive/],
    [head + "data: bc010204\n", 3, /finite and positive/],
    [head + "data: 3c010204\ndata: 3c010204\n", 4, /appears twice/],
    [head + "kiln-key structure=a weights=b algorithm=minmax data=c\n", 3, /a second kiln-key/],
    ["KILN-0.1.0-MinMaxCalibration\nkiln-key structure=a weights=b\n", 2, /lacks algorithm, data/],
    ["KILN-0.1.0-MinMaxCalibration\ndata: 3c010204\n", 2, /must carry a kiln-key/],
    [
      "TRT-8003-EntropyCalibration2\nkiln-key structure=a weights=b algorithm=x data=c\n",
      2,
      /not written by Kiln/,
    ],
    ["0bff00000000000003feffffde7210be9\n", 1, /regression cutoff -1/],
  ];
  for (const [text, line, re] of cases) {
    assert.throws(
      () => parseCalibrationCache(new TextEncoder().encode(text), "bad.cache"),
      (e) =>
        e instanceof KilnError && e.line === line && e.file === "bad.cache" && re.test(e.message),
      `${JSON.stringify(text)} → line ${line} ${re}`,
    );
  }
  assert.throws(() => parseCalibrationCache(new Uint8Array([0xff, 0xfe])), /not UTF-8/);
});

Deno.test(
  "TensorRT's caches: the legacy MNIST table and a TRT 8 entropy cache parse; applied to the Caffe MNIST network by name",
  {
    ignore: !exists(`${SHARED}int8/mnist_caffe_LegacyCalibrationTable`),
  },
  async () => {
    const legacy = parseCalibrationCache(
      Deno.readFileSync(`${SHARED}int8/mnist_caffe_LegacyCalibrationTable`),
    );
    assert.equal(legacy.algorithm, "legacy");
    assert.deepEqual(legacy.legacy, { regressionCutoff: 1, quantile: 0.999999 });
    assert.equal(legacy.scales.size, 8);
    // Softmax output in [0, 1]: amax 1, scale 1/127 as a float32 (0x3c010204).
    assert.equal(legacy.scales.get("prob"), Math.fround(1 / 127));
    assert.equal(legacy.scales.get("conv1"), hexToFloat32("3ce61f4d"));

    const trt = parseCalibrationCache(
      Deno.readFileSync(`${SHARED}int8/trt8003_entropy2_calibration.cache`),
    );
    assert.equal(trt.writer, "TRT");
    assert.equal(trt.version, "8003");
    assert.equal(trt.algorithm, "entropy2");
    assert.equal(trt.scales.size, 49);
    assert.equal(trt.scales.get("output_0"), hexToFloat32("3e273530"));

    if (!exists(`${SHARED}caffe/mnist/mnist.caffemodel`)) return;
    const { network, blobs } = await parseCaffe({
      deploy: `${SHARED}caffe/mnist/mnist.prototxt`,
      model: `${SHARED}caffe/mnist/mnist.caffemodel`,
    });
    network.markOutput(blobs.get("prob")!);
    const bytes = Deno.readFileSync(`${SHARED}int8/mnist_caffe_LegacyCalibrationTable`);
    const logger = new MemoryLogger();
    const r = await calibrate(
      network,
      {
        batchSize: 1,
        algorithm: "legacy",
        getBatch: () => assert.fail("a matching TensorRT cache needs no batch"),
        readCache: () => bytes,
      },
      { logger },
    );
    assert.equal(r.fromCache, true);
    assert.deepEqual([...r.scales.keys()].sort(), [
      "conv1",
      "conv2",
      "data",
      "ip1",
      "ip2",
      "pool1",
      "pool2",
      "prob",
    ]);
    const warning = logger.messages.find((m) => m.severity === "warning")!.message;
    assert.match(warning, /carries no key: it cannot be checked/);
    assert.match(warning, /2 tensors have no scale: scale, ip1@ip1/);
    // The same table offered to an entropy calibrator is another algorithm's: recalibrated.
    const images = randomArray(784 * 2, rng(3), 0, 255);
    const e = await calibrate(
      network,
      Object.assign(
        new EntropyCalibrator2(new ArrayBatchStream({ data: images }, { batchSize: 2, count: 2 })),
        {
          readCache: () => bytes,
        },
      ),
      { logger },
    );
    assert.deepEqual(e.cacheRejected?.reasons, ["algorithm"]);
    assert.equal(e.scales.size, 10);
  },
);
