/**
 * The ONNX model-zoo MNIST network (mnist-8), built layer by layer from the shipped weight dump
 * data/wts/mnist8.wts and run in batches over the first 1,000 digits of the MNIST test set
 * (shipped in data/mnist/). Kiln's demo: it needs nothing but the repository.
 *
 *   deno run -A examples/mnist_zoo.ts [--wts=PATH] [--images=PATH] [--labels=PATH]
 *                                     [--batch=100] [--show=3] [--device=cpu|cuda|auto]
 *
 * conv 8 5×5 pad 2 + bias → ReLU → maxpool 2 → conv 16 5×5 pad 2 + bias → ReLU → maxpool 3 →
 * flatten (16·4·4 = 256) → fc 10 → logits. Input: pixel/255 (MNIST digits are bright on black).
 * The model stores the last layer as x·W with W [256, 10]; FullyConnected wants [10, 256].
 */
import { buildEngine, KilnError, Logger, N, Network, readWts, type WtsTensor } from "../mod.ts";
import {
  argmax,
  type Device,
  deviceFlag,
  intFlag,
  parseFlags,
  pathOf,
  printDigit,
  softmax,
  transpose,
  weightsNamed,
} from "./_common.ts";
import { asciiArt, readIdxGz } from "./_pgm.ts";

const DATA = pathOf(new URL("../data", import.meta.url));
/** The accuracy below which the demo fails (the model scores about 99% on the whole set). */
export const MIN_ACCURACY = 0.98;

export interface MnistZooOptions {
  wts?: string;
  /** Gzipped IDX images (N×28×28 uint8) and labels (N uint8). */
  images?: string;
  labels?: string;
  /** Images per execute() call (the engine's maxBatchSize). */
  batch?: number;
  /** How many digits to print as ASCII art. */
  show?: number;
  device?: Device;
  log?: (line: string) => void;
  logger?: Logger;
}

export interface MnistZooResult {
  total: number;
  correct: number;
  accuracy: number;
  /** Indices of the misclassified images. */
  wrong: number[];
  device: string;
  /** Wall time of the execute() calls, in milliseconds. */
  inferenceMs: number;
}

export function buildMnist8(weights: Map<string, WtsTensor>, file: string): Network {
  const w = (name: string) => weightsNamed(weights, name, file);
  const net = new Network();
  const logits = net.input("Input3", [N, 1, 28, 28])
    .conv({
      name: "conv1",
      outputs: 8,
      kernel: 5,
      padding: [2, 2],
      weights: w("conv1filter"),
      bias: w("conv1bias"),
    })
    .relu()
    .maxPool({ name: "pool1", window: 2 })
    .conv({
      name: "conv2",
      outputs: 16,
      kernel: 5,
      padding: [2, 2],
      weights: w("conv2filter"),
      bias: w("conv2bias"),
    })
    .relu()
    .maxPool({ name: "pool2", window: 3 })
    // FullyConnected flattens C·H·W from axis 1, the order of the model's [16, 4, 4, 10] W.
    .fc({
      name: "fc",
      outputs: 10,
      weights: transpose(w("fcweights"), 256, 10),
      bias: w("fcbias"),
    });
  net.markOutput(logits, "logits");
  return net;
}

export async function classifyTestSet(o: MnistZooOptions = {}): Promise<MnistZooResult> {
  const log = o.log ?? console.log;
  const wts = o.wts ?? `${DATA}/wts/mnist8.wts`;
  const imagesFile = o.images ?? `${DATA}/mnist/t10k-1000-images-idx3-ubyte.gz`;
  const labelsFile = o.labels ?? `${DATA}/mnist/t10k-1000-labels-idx1-ubyte.gz`;
  const batch = o.batch ?? 100;

  const network = buildMnist8(await readWts(wts), wts);
  const images = await readIdxGz(imagesFile);
  const labels = await readIdxGz(labelsFile);
  const [count, rows, cols] = images.dims;
  if (images.dims.length !== 3 || rows !== 28 || cols !== 28) {
    throw new KilnError("SHAPE_MISMATCH", `${imagesFile}: [${images.dims}], not [n, 28, 28]`, {
      file: imagesFile,
    });
  }
  if (labels.dims.length !== 1 || labels.dims[0] !== count) {
    throw new KilnError("SHAPE_MISMATCH", `${labelsFile}: [${labels.dims}], not [${count}]`, {
      file: labelsFile,
    });
  }

  const engine = await buildEngine(network, {
    maxBatchSize: batch,
    device: o.device ?? "auto",
    logger: o.logger ?? new Logger("warning"),
  });
  try {
    log(
      `mnist-8 from ${wts}: ${engine.layers.length} layers on ${engine.device.name}; ` +
        `${count} test digits in batches of ${batch}`,
    );
    using ctx = engine.createContext();
    const logits = new Float32Array(count * 10);
    let inferenceMs = 0;
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      const input = new Float32Array(n * 784);
      for (let i = 0; i < input.length; i++) input[i] = images.data[start * 784 + i] / 255;
      const t0 = performance.now();
      const out = (await ctx.execute({ Input3: input })).logits as Float32Array;
      inferenceMs += performance.now() - t0;
      logits.set(out, start * 10);
    }

    const wrong: number[] = [];
    for (let i = 0; i < count; i++) {
      if (argmax(logits.subarray(i * 10, i * 10 + 10)) !== labels.data[i]) wrong.push(i);
    }
    // A few digits as the samples print them; the first mistake too, when there is one.
    const shown = [...Array(Math.min(o.show ?? 3, count)).keys()];
    if (wrong.length && !shown.includes(wrong[0])) shown.push(wrong[0]);
    for (const i of shown) {
      const pixels = images.data.subarray(i * 784, (i + 1) * 784);
      const art = asciiArt({ width: 28, height: 28, pixels }, false);
      const p = softmax(logits.subarray(i * 10, i * 10 + 10));
      printDigit(log, `test image ${i} (label ${labels.data[i]}):`, art, p, labels.data[i]);
    }
    const correct = count - wrong.length;
    return {
      total: count,
      correct,
      accuracy: correct / count,
      wrong,
      device: engine.device.name,
      inferenceMs,
    };
  } finally {
    engine[Symbol.dispose]();
  }
}

const USAGE = "usage: deno run -A examples/mnist_zoo.ts [--wts=PATH] [--images=PATH] " +
  "[--labels=PATH] [--batch=100] [--show=3] [--device=cpu|cuda|auto]";

/** Runs the demo; the exit code is 0 when the accuracy reaches MIN_ACCURACY. */
export async function main(args: string[]): Promise<number> {
  try {
    const f = parseFlags(args, {
      wts: "",
      images: "",
      labels: "",
      batch: "100",
      show: "3",
      device: "",
    });
    const r = await classifyTestSet({
      wts: f.wts || undefined,
      images: f.images || undefined,
      labels: f.labels || undefined,
      batch: intFlag("batch", f.batch),
      show: Number(f.show) >= 0 ? Number(f.show) : 3,
      device: deviceFlag(f.device),
    });
    const perImageUs = (r.inferenceMs * 1000 / r.total).toFixed(1);
    console.log(
      `\nwrong: ${r.wrong.length ? r.wrong.join(", ") : "none"}` +
        `\ninference: ${
          r.inferenceMs.toFixed(1)
        } ms for ${r.total} images (${perImageUs} µs each) on ${r.device}` +
        `\naccuracy: ${r.correct}/${r.total} = ${(100 * r.accuracy).toFixed(1)}%`,
    );
    return r.accuracy >= MIN_ACCURACY ? 0 : 1;
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    console.error(`error: ${e.message}\n${USAGE}`);
    return 2;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
