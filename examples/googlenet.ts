/**
 * sampleGoogleNet: BVLC GoogLeNet from its Caffe deploy.prototxt, with random weights (the
 * caffemodel is not needed to time it), built for a batch size from the command line and
 * profiled layer by layer.
 *
 *   deno run -A examples/googlenet.ts [--batch=N] [--device=cpu|cuda|auto] [--iterations=K] [--data=DIR]
 */
import { buildEngine, KilnError, Logger, parseCaffe } from "../mod.ts";

export interface GoogLeNetOptions {
  /** Folder holding caffe/bvlc_googlenet/deploy.prototxt. */
  data: string;
  batch: number;
  device: "cpu" | "cuda" | "auto";
  /** Profiled runs after one warm-up run. */
  iterations: number;
  log?: (line: string) => void;
}

export interface GoogLeNetResult {
  /** The profile table: layer, ms, % (sorted by time). */
  table: string;
  /** Mean milliseconds of a whole run. */
  ms: number;
  outputDims: readonly (number | string)[];
}

export async function runGoogLeNet(o: GoogLeNetOptions): Promise<GoogLeNetResult> {
  const log = o.log ?? console.log;
  const deploy = `${o.data}/caffe/bvlc_googlenet/deploy.prototxt`;
  const { network, blobs, diagnostics } = await parseCaffe({ deploy });
  for (const d of diagnostics.filter((d) => d.severity === "warning")) log(`warning: ${d.message}`);
  const prob = network.markOutput(blobs.get("prob"));
  log(
    `parsed ${deploy}: ${network.layers.length} layers, input ${network.inputs[0]}, output ${prob}`,
  );

  const engine = await buildEngine(network, {
    device: o.device,
    maxBatchSize: o.batch,
    logger: new Logger("warning"),
  });
  log(`built for ${engine.device.name}, maxBatchSize ${o.batch}: ${engine.layers.length} layers`);
  using ctx = engine.createContext();
  const input = new Float32Array(o.batch * 3 * 224 * 224);
  let seed = 1;
  for (let i = 0; i < input.length; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    input[i] = seed / 2 ** 32 - 0.5;
  }
  await ctx.execute({ data: input }); // warm-up
  ctx.profiler.enabled = true;
  const t0 = performance.now();
  for (let i = 0; i < o.iterations; i++) await ctx.execute({ data: input });
  const ms = (performance.now() - t0) / o.iterations;
  engine[Symbol.dispose]();
  return { table: ctx.profiler.table(), ms, outputDims: prob.dims };
}

function parseArgs(args: string[]): GoogLeNetOptions {
  const o: GoogLeNetOptions = { data: "../shared/data", batch: 1, device: "auto", iterations: 1 };
  for (const a of args) {
    const m = /^--(\w+)=(.*)$/.exec(a);
    const key = m?.[1], value = m?.[2] ?? "";
    const positive = () => {
      const n = Number(value);
      if (!(Number.isInteger(n) && n >= 1)) {
        usage(`--${key} takes a positive integer, got "${value}"`);
      }
      return n;
    };
    if (key === "batch") o.batch = positive();
    else if (key === "iterations") o.iterations = positive();
    else if (key === "data") o.data = value;
    else if (key === "device" && ["cpu", "cuda", "auto"].includes(value)) {
      o.device = value as GoogLeNetOptions["device"];
    } else usage(`unknown argument "${a}"`);
  }
  return o;
}

function usage(problem: string): never {
  console.error(
    `${problem}\nusage: deno run -A examples/googlenet.ts [--batch=N] [--device=cpu|cuda|auto] ` +
      "[--iterations=K] [--data=DIR]",
  );
  Deno.exit(2);
}

if (import.meta.main) {
  const o = parseArgs(Deno.args);
  try {
    const r = await runGoogLeNet(o);
    console.log(
      `\nbatch ${o.batch}, ${o.iterations} profiled run(s): ${r.ms.toFixed(2)} ms per run\n`,
    );
    console.log(r.table);
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    console.error(`error: ${e.message}`);
    Deno.exit(1);
  }
}
