/**
 * The reduced-precision accuracy table (issue 7): TensorRT's Caffe LeNet (caffe/mnist) top-1 on
 * MNIST test images in FP32, FP16 and INT8 on the CPU, INT8 calibrated (EntropyCalibrator2, and MinMax)
 * on the first 1,000 images of the 10k test set and evaluated on the other 9,000; then CharRNN
 * in FP16 against FP32: how many generated characters for the default prompt are equal; then
 * GoogLeNet in FP16 against FP32, layer by layer (compareWithFp32).
 *
 *   deno run -A bench/accuracy.ts [--data=../shared/data] [--calibrate=1000] [--evaluate=9000]
 *                                 [--batch=100] [--chars=300] [--no-charrnn] [--no-googlenet]
 *
 * Exit 0 when INT8 and FP16 are within 0.5% (absolute top-1) of FP32 and CharRNN matches for at
 * least 200 characters; 1 otherwise; 77 when the NVIDIA sample data is absent.
 *
 * Result (2026-11-22, CPU backend, images 1000..9999, calibrated on 0..999):
 *
 * | precision       | correct   | top-1  | Δ vs FP32 | layers                     |
 * | --------------- | --------- | ------ | --------- | -------------------------- |
 * | FP32            | 8922/9000 | 99.13% | 0.00      | 7 fp32                     |
 * | FP16            | 8922/9000 | 99.13% | 0.00      | 2 reformat, 7 fp16         |
 * | INT8 (entropy2) | 8922/9000 | 99.13% | 0.00      | 4 fp32, 3 reformat, 4 int8 |
 * | INT8 (minmax)   | 8921/9000 | 99.12% | -0.01     | 4 fp32, 3 reformat, 4 int8 |
 *
 * CharRNN FP16 vs FP32, prompt "ROMEO:\n": the 300 generated characters are identical.
 * GoogLeNet FP16 vs FP32 (141 layers): output "prob" 4.3e-4 max relative error (worst layer
 * inception_3b/relu_5x5_reduce, 1.6e-3).
 */
import {
  ArrayBatchStream,
  type BuildConfig,
  buildEngine,
  compareWithFp32,
  EntropyCalibrator2,
  KilnError,
  type LayerError,
  Logger,
  MinMaxCalibrator,
  type Network,
  parseCaffe,
  readCaffeBlob,
  readCheckpoint,
} from "../mod.ts";
import { buildCharRnn, CHECKPOINT, generate, readVocab } from "../examples/charrnn.ts";

export interface MnistRow {
  precision: "fp32" | "fp16" | "int8";
  /** The INT8 calibrator's algorithm. */
  calibrator?: string;
  correct: number;
  total: number;
  /** Top-1 accuracy in percent. */
  top1: number;
  /** Layers (by precision) of the engine: e.g. { int8: 4, fp32: 3 }. */
  layers: Record<string, number>;
  ms: number;
}

export interface AccuracyOptions {
  data: string;
  /** Images calibrated on (the first of the test set). */
  calibrate: number;
  /** Images evaluated (those after the calibration images). */
  evaluate: number;
  batch: number;
  log?: (line: string) => void;
}

/** An IDX file (gzip): big-endian magic, dims, then uint8 values. */
async function readIdx(path: string): Promise<{ dims: number[]; data: Uint8Array }> {
  let bytes: Uint8Array;
  try {
    const stream = (await Deno.open(path)).readable.pipeThrough(new DecompressionStream("gzip"));
    bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new KilnError("IO_ERROR", `cannot read ${path}: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = bytes.length >= 4 ? view.getUint32(0) : 0;
  const rank = magic & 0xff;
  if ((magic >>> 8) !== 0x08 || rank < 1 || rank > 3 || bytes.length < 4 + 4 * rank) {
    throw new KilnError("PARSE_ERROR", `${path}: not a uint8 IDX file (magic ${magic})`, {
      file: path,
    });
  }
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i));
  const n = dims.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * rank;
  if (bytes.length - start < n) {
    throw new KilnError(
      "PARSE_ERROR",
      `${path}: ${n} values expected, ${bytes.length - start} present`,
      {
        file: path,
      },
    );
  }
  return { dims, data: bytes.subarray(start, start + n) };
}

/** Whether the NVIDIA sample data this benchmark needs is present under `data`. */
export function hasMnistData(data: string): boolean {
  return [
    "caffe/mnist/mnist.prototxt",
    "caffe/mnist/mnist.caffemodel",
    "caffe/mnist/mnist_mean.binaryproto",
    "mnist-idx/t10k-images-idx3-ubyte.gz",
    "mnist-idx/t10k-labels-idx1-ubyte.gz",
  ].every((f) => {
    try {
      return Deno.statSync(`${data}/${f}`).isFile;
    } catch {
      return false;
    }
  });
}

async function lenet(data: string): Promise<Network> {
  const dir = `${data}/caffe/mnist`;
  const { network, blobs } = await parseCaffe({
    deploy: `${dir}/mnist.prototxt`,
    model: `${dir}/mnist.caffemodel`,
  });
  network.markOutput(blobs.get("prob"));
  return network;
}

/** FP32, FP16 and INT8 top-1 of LeNet on the MNIST test images. */
export async function mnistAccuracy(o: AccuracyOptions): Promise<MnistRow[]> {
  const log = o.log ?? console.log;
  const images = await readIdx(`${o.data}/mnist-idx/t10k-images-idx3-ubyte.gz`);
  const labels = await readIdx(`${o.data}/mnist-idx/t10k-labels-idx1-ubyte.gz`);
  const count = images.dims[0];
  if (o.calibrate + o.evaluate > count || labels.dims[0] !== count) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `${o.calibrate} calibration + ${o.evaluate} evaluation images exceed the ${count} test images`,
    );
  }
  const mean = await readCaffeBlob(`${o.data}/caffe/mnist/mnist_mean.binaryproto`);
  // The sample's input: pixel − mean image (the prototxt's Power layer then scales by 0.0125).
  // TensorRT's digits (and so the mean image) are dark on white; IDX images are white on black.
  const input = (first: number, n: number) => {
    const x = new Float32Array(n * 784);
    for (let i = 0; i < n; i++) {
      for (let p = 0; p < 784; p++) {
        x[i * 784 + p] = 255 - images.data[(first + i) * 784 + p] - mean.data[p];
      }
    }
    return x;
  };
  const calibration = input(0, o.calibrate);
  const rows: MnistRow[] = [];
  const stream = () =>
    new ArrayBatchStream({ data: calibration }, {
      batchSize: Math.min(o.batch, o.calibrate),
      count: o.calibrate,
    });
  const configs: [MnistRow["precision"], BuildConfig, string?][] = [
    ["fp32", {}],
    ["fp16", { fp16: true }],
    ["int8", { int8: true, calibrator: new EntropyCalibrator2(stream()) }, "entropy2"],
    ["int8", { int8: true, calibrator: new MinMaxCalibrator(stream()) }, "minmax"],
  ];
  for (const [precision, config, calibrator] of configs) {
    using engine = await buildEngine(await lenet(o.data), {
      device: "cpu",
      maxBatchSize: o.batch,
      logger: new Logger("error"),
      ...config,
    });
    const layers: Record<string, number> = {};
    for (const l of engine.describe().layers) {
      const key = l.kind === "Reformat" ? "reformat" : l.precision;
      layers[key] = (layers[key] ?? 0) + 1;
    }
    using ctx = engine.createContext();
    let correct = 0;
    const t0 = performance.now();
    for (let first = o.calibrate; first < o.calibrate + o.evaluate; first += o.batch) {
      const n = Math.min(o.batch, o.calibrate + o.evaluate - first);
      const prob = (await ctx.execute({ data: input(first, n) })).prob as Float32Array;
      for (let i = 0; i < n; i++) {
        const p = prob.subarray(i * 10, i * 10 + 10);
        let best = 0;
        for (let k = 1; k < 10; k++) if (p[k] > p[best]) best = k;
        if (best === labels.data[first + i]) correct++;
      }
    }
    const ms = performance.now() - t0;
    const top1 = (100 * correct) / o.evaluate;
    const row = { precision, calibrator, correct, total: o.evaluate, top1, layers, ms };
    rows.push(row);
    log(
      `${precision}${calibrator ? ` (${calibrator})` : ""}: ${correct}/${o.evaluate} = ${
        row.top1.toFixed(2)
      }% top-1 (${Object.entries(layers).map(([k, v]) => `${v} ${k}`).join(", ")} layers; ${
        (ms / 1000).toFixed(1)
      } s)`,
    );
  }
  return rows;
}

export interface CharRnnMatch {
  /** Characters generated in each precision. */
  length: number;
  /** Leading characters of the FP16 text equal to the FP32 text. */
  identicalPrefix: number;
  /** Positions where the two texts agree. */
  equalPositions: number;
  fp32: string;
  fp16: string;
}

/** CharRNN's greedy text for `prompt` in FP32 and FP16 on the CPU, compared. */
export async function charRnnFp16(prompt = "ROMEO:\n", length = 300): Promise<CharRnnMatch> {
  const vocab = await readVocab();
  const checkpoint = await readCheckpoint(CHECKPOINT);
  const text = async (config: BuildConfig) => {
    using engine = await buildEngine(buildCharRnn(checkpoint), {
      device: "cpu",
      logger: new Logger("error"),
      ...config,
    });
    return await generate(engine, vocab, prompt, length);
  };
  const fp32 = await text({});
  const fp16 = await text({ fp16: true });
  let identicalPrefix = 0;
  while (identicalPrefix < length && fp32[identicalPrefix] === fp16[identicalPrefix]) {
    identicalPrefix++;
  }
  let equalPositions = 0;
  for (let i = 0; i < length; i++) if (fp32[i] === fp16[i]) equalPositions++;
  return { length, identicalPrefix, equalPositions, fp32, fp16 };
}

export interface GoogLeNetFp16 {
  /** compareWithFp32's rows, in layer order. */
  rows: LayerError[];
  /** The row of the output ("prob"). */
  output: LayerError;
  /** The layer with the largest max relative error. */
  worst: LayerError;
}

/**
 * GoogLeNet (BVLC deploy.prototxt; the parser's seeded weights, no caffemodel needed) in FP16
 * against FP32 on one seeded 224×224 image, every layer compared. Undefined without the file.
 */
export async function googLeNetFp16(data: string): Promise<GoogLeNetFp16 | undefined> {
  const deploy = `${data}/caffe/bvlc_googlenet/deploy.prototxt`;
  try {
    Deno.statSync(deploy);
  } catch {
    return undefined;
  }
  const { network, blobs } = await parseCaffe({ deploy });
  network.markOutput(blobs.get("prob"));
  const input = new Float32Array(3 * 224 * 224);
  let seed = 1;
  for (let i = 0; i < input.length; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    input[i] = seed / 2 ** 32 - 0.5;
  }
  const rows = await compareWithFp32(network, { data: input }, { device: "cpu", fp16: true });
  const output = rows.find((r) => r.tensor === "prob")!;
  const worst = rows.reduce((a, b) => (b.maxRelError > a.maxRelError ? b : a));
  return { rows, output, worst };
}

/** The table in markdown. */
export function accuracyTable(rows: readonly MnistRow[]): string {
  const fp32 = rows.find((r) => r.precision === "fp32")!;
  return [
    "| precision | correct | top-1 | Δ vs FP32 | layers |",
    "| --- | ---: | ---: | ---: | --- |",
    ...rows.map((r) =>
      `| ${r.precision.toUpperCase()}${
        r.calibrator ? ` (${r.calibrator})` : ""
      } | ${r.correct}/${r.total} | ${r.top1.toFixed(2)}% | ${(r.top1 - fp32.top1).toFixed(2)} | ${
        Object.entries(r.layers).map(([k, v]) => `${v} ${k}`).join(", ")
      } |`
    ),
  ].join("\n");
}

export async function main(args: string[]): Promise<number> {
  const f: Record<string, string> = {
    data: "../shared/data",
    calibrate: "1000",
    evaluate: "9000",
    batch: "100",
    chars: "300",
  };
  let charrnn = true, googlenet = true;
  for (const a of args) {
    const m = /^--([\w-]+)=(.*)$/.exec(a);
    if (a === "--no-charrnn") charrnn = false;
    else if (a === "--no-googlenet") googlenet = false;
    else if (m && m[1] in f) f[m[1]] = m[2];
    else {
      console.error(
        `unknown argument "${a}"\nusage: deno run -A bench/accuracy.ts [--data=DIR] [--calibrate=N] [--evaluate=N] [--batch=N] [--chars=N] [--no-charrnn] [--no-googlenet]`,
      );
      return 2;
    }
  }
  const num = (k: string) => {
    const v = Number(f[k]);
    if (!(Number.isInteger(v) && v >= 1)) {
      console.error(`--${k} must be a positive integer; got "${f[k]}"`);
      Deno.exit(2);
    }
    return v;
  };
  if (!hasMnistData(f.data)) {
    console.error(`the NVIDIA MNIST sample data is not under ${f.data} (caffe/mnist, mnist-idx)`);
    return 77;
  }
  try {
    const rows = await mnistAccuracy({
      data: f.data,
      calibrate: num("calibrate"),
      evaluate: num("evaluate"),
      batch: num("batch"),
    });
    console.log(
      `\nLeNet (Caffe, caffe/mnist), MNIST test images ${num("calibrate")}..${
        num("calibrate") + num("evaluate") - 1
      }, CPU; INT8 calibrated (entropy2, minmax) on images 0..${num("calibrate") - 1}\n`,
    );
    console.log(accuracyTable(rows));
    const fp32 = rows[0].top1;
    let ok = rows.every((r) => Math.abs(r.top1 - fp32) <= 0.5);
    if (charrnn) {
      const c = await charRnnFp16("ROMEO:\n", num("chars"));
      console.log(
        `\nCharRNN FP16 vs FP32 (prompt "ROMEO:\\n", ${c.length} characters): identical for the first ${c.identicalPrefix}, equal at ${c.equalPositions} positions`,
      );
      ok &&= c.identicalPrefix >= Math.min(200, c.length);
    }
    const g = googlenet ? await googLeNetFp16(f.data) : undefined;
    if (g) {
      const e = (r: LayerError) =>
        `${r.maxRelError.toExponential(2)} max, ${r.meanRelError.toExponential(2)} mean`;
      console.log(
        `\nGoogLeNet FP16 vs FP32 (${g.rows.length} layers, seeded weights and image): output "prob" ${
          e(g.output)
        } relative error; worst layer ${g.worst.layer}: ${e(g.worst)}`,
      );
      ok &&= g.output.maxRelError <= 1e-2;
    }
    return ok ? 0 : 1;
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    console.error(`error: ${e.message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
