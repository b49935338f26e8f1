/**
 * sampleOnnxMNIST: the ONNX model-zoo MNIST network (data/onnx/mnist-8.onnx, shipped: MIT)
 * imported with parseOnnx, run on the ten pgm digits one at a time (the model's input is
 * [1, 1, 28, 28]), each fed as 1 − pgm/255 like TensorRT's sample. The model outputs logits;
 * the printout shows their softmax.
 *
 *   deno run -A examples/onnx_mnist.ts [--model=PATH] [--data=DIR] [--device=cpu|cuda|auto]
 *
 * The digits are NVIDIA's TensorRT sample data: Kiln does not ship them; by default they are
 * read from ../shared/data beside the repository.
 */
import { buildEngine, KilnError, Logger, parseOnnx } from "../mod.ts";
import {
  argmax,
  type Device,
  deviceFlag,
  type DigitsResult,
  exists,
  parseFlags,
  pathOf,
  printDigit,
  softmax,
} from "./_common.ts";
import { asciiArt, type GrayImage, readPgm } from "./_pgm.ts";

const SHARED_DATA = pathOf(new URL("../../shared/data", import.meta.url));
export const MNIST_ONNX = pathOf(new URL("../data/onnx/mnist-8.onnx", import.meta.url));

export interface OnnxMnistOptions {
  /** The ONNX model (data/onnx/mnist-8.onnx by default). */
  model?: string;
  /** Folder holding images/mnist-pgm/0.pgm … 9.pgm (../shared/data by default). */
  data?: string;
  device?: Device;
  /** Where the printout goes (console.log by default; tests pass a no-op). */
  log?: (line: string) => void;
  logger?: Logger;
}

export interface OnnxMnistResult extends DigitsResult {
  /** The network's ten logits for each digit 0..9. */
  logits: Float32Array[];
  /** The input fed for each digit (1 − pgm/255), for checks against other implementations. */
  inputs: Float32Array[];
}

/** Imports the model, builds an engine and classifies the ten digits. */
export async function classifyDigits(o: OnnxMnistOptions = {}): Promise<OnnxMnistResult> {
  const log = o.log ?? console.log;
  const model = o.model ?? MNIST_ONNX;
  const data = o.data ?? SHARED_DATA;
  const logger = o.logger ?? new Logger("warning");

  const { network, diagnostics } = await parseOnnx(model, { logger });
  const input = network.inputs[0], output = network.outputs[0];
  if (
    network.inputs.length !== 1 || network.outputs.length !== 1 || input.dims.join() !== "1,1,28,28"
  ) {
    throw new KilnError(
      "SHAPE_MISMATCH",
      `${model}: expected one [1,1,28,28] input and one output, got inputs ${
        network.inputs.map(String).join(", ")
      } and outputs ${network.outputs.map(String).join(", ")}`,
      { file: model },
    );
  }
  const images: GrayImage[] = [];
  for (let d = 0; d < 10; d++) images.push(await readPgm(`${data}/images/mnist-pgm/${d}.pgm`));
  const inputs = images.map((img, d) => {
    if (img.width !== 28 || img.height !== 28) {
      throw new KilnError("SHAPE_MISMATCH", `digit ${d} is ${img.width}x${img.height}, not 28x28`);
    }
    // TensorRT's sampleOnnxMNIST: the digit bright on a dark background, in [0, 1].
    return Float32Array.from(img.pixels, (p) => 1 - p / 255);
  });

  const engine = await buildEngine(network, { device: o.device ?? "auto", logger });
  try {
    log(
      `${model}: ${network.layers.length} layers imported (${diagnostics.length} notes), ` +
        `${engine.layers.length} after optimization on ${engine.device.name}`,
    );
    using ctx = engine.createContext();
    const logits: Float32Array[] = [];
    for (let d = 0; d < 10; d++) {
      const out = await ctx.execute({ [input.name]: inputs[d] });
      logits.push(Float32Array.from(out[output.name] as Float32Array));
      printDigit(log, `input ${d}.pgm:`, asciiArt(images[d], true), softmax(logits[d]), d);
    }
    const predictions = logits.map((l) => argmax(l));
    const correct = predictions.filter((p, d) => p === d).length;
    return { predictions, correct, device: engine.device.name, logits, inputs };
  } finally {
    engine[Symbol.dispose]();
  }
}

const USAGE =
  "usage: deno run -A examples/onnx_mnist.ts [--model=PATH] [--data=DIR] [--device=cpu|cuda|auto]";

/** Runs the sample; the exit code is 0 when all ten digits are right. */
export async function main(args: string[]): Promise<number> {
  try {
    const f = parseFlags(args, { model: "", data: "", device: "" });
    const data = f.data || SHARED_DATA;
    if (!exists(`${data}/images/mnist-pgm`)) {
      console.error(
        `not found: ${data}/images/mnist-pgm\nThis sample reads NVIDIA's TensorRT sample digits, ` +
          "which Kiln does not ship; pass --data=DIR (the folder holding images/mnist-pgm).",
      );
      return 77; // "skipped": the data is absent, nothing was tested
    }
    const r = await classifyDigits({
      model: f.model || undefined,
      data,
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
