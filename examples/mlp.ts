/**
 * sampleMLP: a 784 → 256 → 256 → 10 multilayer perceptron whose weights come from a TensorFlow
 * model dumped to `.wts2` (dumpTFWts.py's v2 format), run on the ten pgm digits.
 *
 *   deno run -A examples/mlp.ts [--wts=PATH] [--data=DIR] [--device=cpu|cuda|auto]
 *
 * Each layer is y = sigmoid(x·W + b), the output layer included, as in the sample. TensorFlow
 * stores W as [in, out]; a FullyConnected layer wants [out, in], so each W is transposed. Input:
 * 1 − pgm/255 (the digit bright on black, as the network was trained). The weights and digits
 * are NVIDIA's TensorRT sample data, read from ../shared/data by default (Kiln ships neither).
 */
import { buildEngine, KilnError, Logger, N, Network, readWts, type WtsTensor } from "../mod.ts";
import {
  argmax,
  type Device,
  deviceFlag,
  type DigitsResult,
  exists,
  parseFlags,
  pathOf,
  printDigit,
  transpose,
  weightsNamed,
} from "./_common.ts";
import { asciiArt, type GrayImage, readPgm } from "./_pgm.ts";

const SHARED_DATA = pathOf(new URL("../../shared/data", import.meta.url));

export interface MlpOptions {
  /** The `.wts2` file (hiddenWeights0/1, outputWeights, hiddenBias0/1, outputBias). */
  wts?: string;
  /** Folder holding images/mnist-pgm/*.pgm. */
  data?: string;
  device?: Device;
  log?: (line: string) => void;
  logger?: Logger;
}

/** The three layers of sampleMLP, each a FullyConnected with a sigmoid. */
const LAYERS = [
  { name: "hidden0", weights: "hiddenWeights0", bias: "hiddenBias0" },
  { name: "hidden1", weights: "hiddenWeights1", bias: "hiddenBias1" },
  { name: "output", weights: "outputWeights", bias: "outputBias" },
];

export function buildMlp(weights: Map<string, WtsTensor>, file: string): Network {
  const net = new Network();
  let x = net.input("data", [N, 1, 28, 28]);
  let inputs = 28 * 28;
  for (const l of LAYERS) {
    const w = weightsNamed(weights, l.weights, file);
    const outputs = w.length / inputs;
    const dims = weights.get(l.weights)!.dims;
    if (!Number.isInteger(outputs) || (dims && (dims[0] !== inputs || dims[1] !== outputs))) {
      throw new KilnError(
        "SHAPE_MISMATCH",
        `${file}: ${l.weights} is [${dims ?? w.length}]; [${inputs}, outputs] expected`,
        { file, tensor: l.weights },
      );
    }
    x = x.fc({
      name: l.name,
      outputs,
      weights: transpose(w, inputs, outputs), // TensorFlow's [in, out] → [out, in]
      bias: weightsNamed(weights, l.bias, file),
    }).sigmoid();
    inputs = outputs;
  }
  net.markOutput(x, "scores");
  return net;
}

/** Builds the MLP from the `.wts2` file and classifies the ten digits in one batch. */
export async function classifyDigits(o: MlpOptions = {}): Promise<DigitsResult> {
  const log = o.log ?? console.log;
  const wts = o.wts ?? `${SHARED_DATA}/wts/sampleMLP.wts2`;
  const data = o.data ?? SHARED_DATA;

  const network = buildMlp(await readWts(wts), wts);
  const images: GrayImage[] = [];
  for (let d = 0; d < 10; d++) images.push(await readPgm(`${data}/images/mnist-pgm/${d}.pgm`));
  const input = new Float32Array(10 * 784);
  images.forEach((img, d) => {
    if (img.width !== 28 || img.height !== 28) {
      throw new KilnError("SHAPE_MISMATCH", `digit ${d} is ${img.width}x${img.height}, not 28x28`);
    }
    for (let i = 0; i < 784; i++) input[d * 784 + i] = 1 - img.pixels[i] / 255;
  });

  const engine = await buildEngine(network, {
    maxBatchSize: 10,
    device: o.device ?? "auto",
    logger: o.logger ?? new Logger("warning"),
  });
  try {
    log(`MLP from ${wts}: ${engine.layers.length} layers on ${engine.device.name}`);
    using ctx = engine.createContext();
    const scores = (await ctx.execute({ data: input })).scores as Float32Array;
    const predictions: number[] = [];
    for (let d = 0; d < 10; d++) {
      const s = scores.subarray(d * 10, d * 10 + 10);
      predictions.push(argmax(s));
      printDigit(log, `input ${d}.pgm:`, asciiArt(images[d], true), s, d, "sigmoid");
    }
    const correct = predictions.filter((p, d) => p === d).length;
    return { predictions, correct, device: engine.device.name };
  } finally {
    engine[Symbol.dispose]();
  }
}

const USAGE =
  "usage: deno run -A examples/mlp.ts [--wts=PATH] [--data=DIR] [--device=cpu|cuda|auto]";

/** Runs the sample; the exit code is 0 when all ten digits are right. */
export async function main(args: string[]): Promise<number> {
  try {
    const f = parseFlags(args, { wts: "", data: "", device: "" });
    const missing = [f.wts || `${SHARED_DATA}/wts/sampleMLP.wts2`, f.data || SHARED_DATA]
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
