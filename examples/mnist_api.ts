/**
 * sampleMNISTAPI: TensorRT's LeNet built layer by layer with the network API, its weights read
 * from a `.wts` dump (the Caffe model's blobs under the names the TensorRT sample looks up), run
 * on the ten pgm digits.
 *
 *   deno run -A examples/mnist_api.ts [--wts=PATH] [--data=DIR] [--device=cpu|cuda|auto]
 *
 * Input: (pgm − mean) · 0.0125, with the mean image from caffe/mnist/mnist_mean.binaryproto
 * subtracted on the host (as the sample does) and the 0.0125 a Scale layer in the network.
 * The weights and digits are NVIDIA's TensorRT sample data: Kiln does not ship them; by
 * default they are read from ../shared/data beside the repository.
 */
import {
  buildEngine,
  KilnError,
  Logger,
  N,
  Network,
  readCaffeBlob,
  readWts,
  type WtsTensor,
} from "../mod.ts";
import {
  argmax,
  type Device,
  deviceFlag,
  type DigitsResult,
  exists,
  parseFlags,
  pathOf,
  printDigit,
  weightsNamed,
} from "./_common.ts";
import { asciiArt, type GrayImage, readPgm } from "./_pgm.ts";

const SHARED_DATA = pathOf(new URL("../../shared/data", import.meta.url));

export interface MnistApiOptions {
  /** The v1 `.wts` file (conv1filter, conv1bias, ..., ip2bias). */
  wts?: string;
  /** Folder holding images/mnist-pgm/*.pgm and caffe/mnist/mnist_mean.binaryproto. */
  data?: string;
  device?: Device;
  /** Where the printout goes (console.log by default; tests pass a no-op). */
  log?: (line: string) => void;
  logger?: Logger;
}

/**
 * LeNet as sampleMNISTAPI builds it: scale → conv 20 5×5 → maxpool 2 → conv 50 5×5 → maxpool 2
 * → fc 500 → ReLU → fc 10 → softmax, for a batch of up to `maxBatch` 1×28×28 images.
 */
export function buildLeNet(weights: Map<string, WtsTensor>, file: string): Network {
  const w = (name: string) => weightsNamed(weights, name, file);
  const net = new Network();
  const prob = net.input("data", [N, 1, 28, 28])
    .scale({ name: "scale", scale: [0.0125] })
    .conv({
      name: "conv1",
      outputs: 20,
      kernel: 5,
      weights: w("conv1filter"),
      bias: w("conv1bias"),
    })
    .maxPool({ name: "pool1", window: 2 })
    .conv({
      name: "conv2",
      outputs: 50,
      kernel: 5,
      weights: w("conv2filter"),
      bias: w("conv2bias"),
    })
    .maxPool({ name: "pool2", window: 2 })
    .fc({ name: "ip1", outputs: 500, weights: w("ip1filter"), bias: w("ip1bias") })
    .relu()
    .fc({ name: "ip2", outputs: 10, weights: w("ip2filter"), bias: w("ip2bias") })
    .softmax();
  net.markOutput(prob, "prob");
  return net;
}

/** Builds the network from the `.wts` file and classifies the ten digits in one batch. */
export async function classifyDigits(o: MnistApiOptions = {}): Promise<DigitsResult> {
  const log = o.log ?? console.log;
  const wts = o.wts ?? `${SHARED_DATA}/wts/mnistapi.wts`;
  const data = o.data ?? SHARED_DATA;

  const network = buildLeNet(await readWts(wts), wts);
  const mean = await readCaffeBlob(`${data}/caffe/mnist/mnist_mean.binaryproto`);
  if (mean.data.length !== 28 * 28) {
    throw new KilnError("SHAPE_MISMATCH", `the mean image has ${mean.data.length} values, not 784`);
  }
  const images: GrayImage[] = [];
  for (let d = 0; d < 10; d++) images.push(await readPgm(`${data}/images/mnist-pgm/${d}.pgm`));
  const input = new Float32Array(10 * 784);
  images.forEach((img, d) => {
    if (img.width !== 28 || img.height !== 28) {
      throw new KilnError("SHAPE_MISMATCH", `digit ${d} is ${img.width}x${img.height}, not 28x28`);
    }
    for (let i = 0; i < 784; i++) input[d * 784 + i] = img.pixels[i] - mean.data[i];
  });

  const engine = await buildEngine(network, {
    maxBatchSize: 10,
    device: o.device ?? "auto",
    logger: o.logger ?? new Logger("warning"),
  });
  try {
    log(`LeNet from ${wts}: ${engine.layers.length} layers on ${engine.device.name}`);
    using ctx = engine.createContext();
    const prob = (await ctx.execute({ data: input })).prob as Float32Array;
    const predictions: number[] = [];
    for (let d = 0; d < 10; d++) {
      const p = prob.subarray(d * 10, d * 10 + 10);
      predictions.push(argmax(p));
      printDigit(log, `input ${d}.pgm:`, asciiArt(images[d], true), p, d);
    }
    const correct = predictions.filter((p, d) => p === d).length;
    return { predictions, correct, device: engine.device.name };
  } finally {
    engine[Symbol.dispose]();
  }
}

const USAGE =
  "usage: deno run -A examples/mnist_api.ts [--wts=PATH] [--data=DIR] [--device=cpu|cuda|auto]";

/** Runs the sample; the exit code is 0 when all ten digits are right. */
export async function main(args: string[]): Promise<number> {
  try {
    const f = parseFlags(args, { wts: "", data: "", device: "" });
    const missing = [f.wts || `${SHARED_DATA}/wts/mnistapi.wts`, f.data || SHARED_DATA]
      .filter((p) => !exists(p));
    if (missing.length) {
      console.error(
        `not found: ${missing.join(", ")}\nThis sample reads NVIDIA's TensorRT sample data, ` +
          "which Kiln does not ship; pass --wts= and --data= (examples/mnist_zoo.ts runs on " +
          "shipped data).",
      );
      return 77; // "skipped": the data is absent, nothing was tested
    }
    const r = await classifyDigits({
      wts: f.wts || undefined,
      data: f.data || undefined,
      device: deviceFlag(f.device),
    });
    console.log(`\n${r.correct}/10 digits correct`);
    return r.correct === 10 ? 0 : 1;
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    console.error(`error: ${e.message}\n${USAGE}`);
    return 2;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
