/**
 * sampleMNIST: the TensorRT sample's Caffe LeNet (mnist.prototxt + mnist.caffemodel), fed the
 * ten pgm digits minus the mean image (the prototxt's Power layer then scales by 0.0125). The
 * engine is then serialized, deserialized and run again: the outputs must be identical.
 *
 *   deno run -A examples/mnist_caffe.ts [--data=DIR] [--device=cpu|cuda|auto]
 */
import {
  buildEngine,
  deserializeEngine,
  KilnError,
  Logger,
  parseCaffe,
  readCaffeBlob,
} from "../mod.ts";

export interface MnistCaffeOptions {
  /** Folder holding caffe/mnist/* and images/mnist-pgm/*.pgm (../shared/data by default). */
  data: string;
  device: "cpu" | "cuda" | "auto";
  log?: (line: string) => void;
}

export interface MnistCaffeResult {
  /** The predicted digit of each image 0..9. */
  predictions: number[];
  correct: number;
  /** Whether the deserialized engine gave bit-identical probabilities. */
  identicalAfterReload: boolean;
  planBytes: number;
}

/** A binary (P5) PGM image: width, height and its 8-bit pixels. */
export function readPgm(
  bytes: Uint8Array,
  file: string,
): { width: number; height: number; pixels: Uint8Array } {
  // Header: "P5", width, height, maxval, separated by whitespace (and # comments), then one byte.
  let pos = 0;
  const token = (): string => {
    for (;;) {
      while (pos < bytes.length && /\s/.test(String.fromCharCode(bytes[pos]))) pos++;
      if (bytes[pos] !== 0x23) break;
      while (pos < bytes.length && bytes[pos] !== 0x0a) pos++;
    }
    const start = pos;
    while (pos < bytes.length && !/\s/.test(String.fromCharCode(bytes[pos]))) pos++;
    return new TextDecoder().decode(bytes.subarray(start, pos));
  };
  const [magic, w, h, max] = [token(), Number(token()), Number(token()), Number(token())];
  pos++;
  if (magic !== "P5" || !(w > 0 && h > 0) || max !== 255 || bytes.length - pos < w * h) {
    throw new KilnError("PARSE_ERROR", `${file}: not an 8-bit binary PGM (P5, maxval 255)`, {
      file,
    });
  }
  return { width: w, height: h, pixels: bytes.subarray(pos, pos + w * h) };
}

/** The digit as ASCII art, darkest pixels densest (TensorRT's samples print it this way). */
export function asciiArt(pixels: Uint8Array, width: number): string[] {
  const shades = " .:-=+*#%@";
  const rows: string[] = [];
  for (let y = 0; y < pixels.length / width; y++) {
    let row = "";
    for (let x = 0; x < width; x++) row += shades[Math.floor((255 - pixels[y * width + x]) / 25.6)];
    rows.push(row);
  }
  return rows;
}

export async function runMnistCaffe(o: MnistCaffeOptions): Promise<MnistCaffeResult> {
  const log = o.log ?? console.log;
  const dir = `${o.data}/caffe/mnist`;
  const { network, blobs } = await parseCaffe({
    deploy: `${dir}/mnist.prototxt`,
    model: `${dir}/mnist.caffemodel`,
  });
  network.markOutput(blobs.get("prob"));
  const mean = await readCaffeBlob(`${dir}/mnist_mean.binaryproto`);
  if (mean.data.length !== 28 * 28) {
    throw new KilnError(
      "PARSE_ERROR",
      `the mean image has ${mean.data.length} values; 784 expected`,
    );
  }

  const images = await Promise.all(Array.from({ length: 10 }, async (_, d) => {
    const file = `${o.data}/images/mnist-pgm/${d}.pgm`;
    const bytes = await Deno.readFile(file).catch((e) => {
      throw new KilnError("IO_ERROR", `cannot read ${file}: ${e.message}`, { file, cause: e });
    });
    return readPgm(bytes, file);
  }));
  const input = new Float32Array(10 * 784);
  images.forEach((img, d) => {
    for (let i = 0; i < 784; i++) input[d * 784 + i] = img.pixels[i] - mean.data[i];
  });

  const logger = new Logger("warning");
  const engine = await buildEngine(network, { device: o.device, maxBatchSize: 10, logger });
  log(`engine for ${engine.device.name}: ${engine.layers.length} layers, maxBatchSize 10`);
  let prob: Float32Array;
  {
    using ctx = engine.createContext();
    prob = (await ctx.execute({ data: input })).prob as Float32Array;
  }

  const predictions: number[] = [];
  for (let d = 0; d < 10; d++) {
    const p = Array.from(prob.subarray(d * 10, d * 10 + 10));
    const best = p.indexOf(Math.max(...p));
    predictions.push(best);
    const top = p.map((v, k) => [k, v] as const).sort((a, b) => b[1] - a[1]).slice(0, 3);
    // The digit (blank rows trimmed) with the ten probabilities beside it.
    const art = asciiArt(images[d].pixels, 28);
    const first = Math.min(art.findIndex((r) => r.trim()), 9);
    const last = Math.max(art.findLastIndex((r) => r.trim()), 18);
    const bars = p.map((v, k) =>
      `${k}: ${"*".repeat(Math.round(v * 20)).padEnd(20)} ${v.toFixed(4)}`
    );
    log(`\ninput ${d}.pgm:`);
    for (let row = first; row <= last; row++) log(`  ${art[row]}   ${bars[row - 9] ?? ""}`);
    log(
      `  -> ${best} ${best === d ? "(correct)" : `(WRONG, expected ${d})`}; top 3: ${
        top.map(([k, v]) => `${k} ${(v * 100).toFixed(2)}%`).join(", ")
      }`,
    );
  }
  const correct = predictions.filter((p, d) => p === d).length;
  log(`\n${correct}/10 digits classified correctly`);

  const plan = engine.serialize();
  engine[Symbol.dispose]();
  const reloaded = await deserializeEngine(plan, { device: o.device, logger });
  let identical: boolean;
  {
    using ctx = reloaded.createContext();
    const again = (await ctx.execute({ data: input })).prob as Float32Array;
    identical = again.length === prob.length && again.every((v, i) => Object.is(v, prob[i]));
  }
  reloaded[Symbol.dispose]();
  log(
    `serialized plan: ${(plan.length / 1024).toFixed(1)} KiB; deserialized engine: ${
      identical ? "identical outputs" : "OUTPUTS DIFFER"
    }`,
  );
  return { predictions, correct, identicalAfterReload: identical, planBytes: plan.length };
}

function parseArgs(args: string[]): MnistCaffeOptions {
  const o: MnistCaffeOptions = { data: "../shared/data", device: "auto" };
  for (const a of args) {
    const m = /^--(\w+)=(.*)$/.exec(a);
    if (m?.[1] === "data") o.data = m[2];
    else if (m?.[1] === "device" && ["cpu", "cuda", "auto"].includes(m[2])) {
      o.device = m[2] as MnistCaffeOptions["device"];
    } else {
      console.error(
        `unknown argument "${a}"\nusage: deno run -A examples/mnist_caffe.ts [--data=DIR] [--device=cpu|cuda|auto]`,
      );
      Deno.exit(2);
    }
  }
  return o;
}

if (import.meta.main) {
  try {
    const r = await runMnistCaffe(parseArgs(Deno.args));
    Deno.exit(r.correct === 10 && r.identicalAfterReload ? 0 : 1);
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    console.error(`error: ${e.message}`);
    Deno.exit(1);
  }
}
