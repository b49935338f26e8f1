/**
 * kilnexec — giexec/trtexec for Kiln: build (or load) an engine from a Caffe or ONNX model,
 * time it, profile it, save it.
 *
 *   deno run -A cli/kilnexec.ts --deploy=net.prototxt [--model=net.caffemodel] --output=prob
 *   deno run -A cli/kilnexec.ts --onnx=model.onnx --batch=8 --profile
 *   deno run -A cli/kilnexec.ts --loadEngine=net.plan --iterations=20
 */
import { parseArgs } from "node:util";
import * as kiln from "../mod.ts";

const USAGE =
  `usage: kilnexec (--deploy=FILE [--model=FILE] --output=NAME... | --onnx=FILE | --loadEngine=FILE) [options]

model
  --deploy=FILE         Caffe deploy prototxt
  --model=FILE          Caffe caffemodel (omitted: random weights, with a warning)
  --output=NAME         output blob name (Caffe; repeatable)
  --onnx=FILE           ONNX model
  --loadEngine=FILE     load a serialized plan instead of building
build
  --batch=N             batch size, also the engine's maxBatchSize (default 1)
  --device=D            auto | cpu | cuda | cuda:N (default auto)
  --workspace=MB        workspace size in MiB (default 64)
  --fp16, --int8        let layers run in FP16 / INT8 (each layer takes its fastest allowed one)
  --calib=FILE          INT8 scales from a calibration cache (Kiln's or TensorRT's)
  --ranges=FILE         INT8 ranges from a name:value file (sampleINT8API's format)
                        (--int8 with neither: scales calibrated on random inputs, timing only)
  --engine=FILE         save the built plan to FILE
run
  --iterations=N        timed iterations (default 10)
  --avgRuns=N           runs averaged per iteration (default 10)
  --hostTime            report host wall time per run (always measured; marks the report)
  --loadInputs=NAME:FILE  input from a file: raw little-endian float32, or a JSON array (.json)
  --profile             per-layer profile table
  --exportProfile=FILE  per-layer profile as JSON
  --exportOutput=FILE   outputs of the last run as JSON
  --verbose             verbose build log
  --help`;

export interface KilnexecResult {
  engine: kiln.Engine;
  /** Mean milliseconds per run for each iteration. */
  iterationsMs: number[];
  outputs: Record<string, kiln.HostArray>;
}

class UsageError extends Error {}

function int(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(`--${name} must be a positive integer, got "${v}"`);
  }
  return n;
}

async function writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new kiln.KilnError("IO_ERROR", `could not write ${path}: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
}

async function loadInput(
  spec: string,
  binding: kiln.Binding,
  batch: number,
): Promise<kiln.HostArray> {
  const at = spec.indexOf(":");
  const file = spec.slice(at + 1);
  let values: number[] | Float32Array;
  try {
    if (file.endsWith(".json")) values = JSON.parse(await Deno.readTextFile(file));
    else {
      const bytes = await Deno.readFile(file);
      if (bytes.length % 4 !== 0) {
        throw new kiln.KilnError(
          "PARSE_ERROR",
          `${bytes.length} bytes is not a whole number of float32 values`,
          {
            file,
          },
        );
      }
      values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4).slice();
    }
  } catch (e) {
    if (e instanceof kiln.KilnError) throw e;
    throw new kiln.KilnError(
      "IO_ERROR",
      `cannot read input "${binding.name}" from ${file}: ${(e as Error).message}`,
      {
        file,
        tensor: binding.name,
        cause: e,
      },
    );
  }
  if (!Array.isArray(values) && !(values instanceof Float32Array)) {
    throw new kiln.KilnError("PARSE_ERROR", `expected a JSON array of numbers`, {
      file,
      tensor: binding.name,
    });
  }
  const n = volume(binding, batch);
  if (values.length !== n) {
    throw new kiln.KilnError(
      "INVALID_ARGUMENT",
      `input "${binding.name}" needs ${n} values; ${file} has ${values.length}`,
      {
        file,
        tensor: binding.name,
      },
    );
  }
  return binding.dtype === "int32" ? Int32Array.from(values) : Float32Array.from(values);
}

function volume(b: kiln.Binding, batch: number): number {
  return b.shape.reduce<number>((a, d) => a * (d === "N" ? batch : d), 1);
}

/** A deterministic random input (xorshift), never zero. */
function randomInput(b: kiln.Binding, batch: number, seed: number): kiln.HostArray {
  const n = volume(b, batch);
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = () => ((s ^= s << 13), (s ^= s >>> 17), (s ^= s << 5), (s >>> 0) / 4294967296);
  if (b.dtype === "int32") return Int32Array.from({ length: n }, () => 1 + Math.floor(next() * 3));
  return Float32Array.from({ length: n }, () => next() * 2 - 1 || 0.5);
}

/**
 * Where --int8 takes its scales: a calibration cache (a calibrator with no batches), a ranges file
 * (set on the tensors; no calibrator), or, like trtexec, random inputs — fine for timing only.
 */
async function int8Scales(
  network: kiln.Network,
  o: { calib?: string; ranges?: string },
  logger: kiln.Logger,
): Promise<kiln.Int8Calibrator | undefined> {
  if (o.ranges) {
    const r = kiln.applyDynamicRanges(network, kiln.readDynamicRanges(o.ranges));
    if (r.unknown.length) {
      logger.warning(`${o.ranges}: ${r.unknown.length} names are not tensors of the network`);
    }
    logger.info(`${o.ranges}: ranges set on ${r.applied.length} tensors`);
    return undefined;
  }
  if (o.calib) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(o.calib);
    } catch (e) {
      throw new kiln.KilnError("IO_ERROR", `cannot read ${o.calib}: ${(e as Error).message}`, {
        file: o.calib,
        cause: e,
      });
    }
    const { algorithm } = kiln.parseCalibrationCache(bytes, o.calib);
    if (!["entropy2", "minmax", "percentile", "legacy"].includes(algorithm)) {
      throw new kiln.KilnError(
        "UNSUPPORTED",
        `${o.calib} was written by the ${algorithm} calibrator, which Kiln does not implement`,
        { file: o.calib },
      );
    }
    return {
      batchSize: 1,
      algorithm: algorithm as kiln.Int8Calibrator["algorithm"],
      cachePath: o.calib,
      getBatch: () => null,
      readCache: () => bytes,
    } as kiln.Int8Calibrator;
  }
  logger.warning(
    "--int8 without --calib or --ranges: scales calibrated on random inputs (timing only; " +
      "the outputs mean nothing)",
  );
  // Eight items per input; an input without the symbolic batch is one item per batch.
  const count = 8;
  const arrays: Record<string, Float32Array> = {};
  let seed = 101, batched = true;
  for (const t of network.inputs) {
    batched &&= t.dims[0] === "N";
    const b = { name: t.name, shape: t.dims, dtype: t.dtype, isInput: true } as kiln.Binding;
    const item = volume(b, 1);
    const values = new Float32Array(item * count);
    for (let i = 0; i < count; i++) {
      values.set(randomInput(b, 1, seed++) as Float32Array, i * item);
    }
    arrays[t.name] = values;
  }
  return new kiln.EntropyCalibrator2(
    new kiln.ArrayBatchStream(arrays, { batchSize: batched ? 4 : 1, count }),
  );
}

export async function kilnexec(
  args: string[],
  out: (line: string) => void = console.log,
): Promise<KilnexecResult> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        deploy: { type: "string" },
        model: { type: "string" },
        output: { type: "string", multiple: true },
        onnx: { type: "string" },
        loadEngine: { type: "string" },
        batch: { type: "string" },
        device: { type: "string" },
        workspace: { type: "string" },
        fp16: { type: "boolean" },
        int8: { type: "boolean" },
        calib: { type: "string" },
        ranges: { type: "string" },
        engine: { type: "string" },
        iterations: { type: "string" },
        avgRuns: { type: "string" },
        hostTime: { type: "boolean" },
        loadInputs: { type: "string", multiple: true },
        profile: { type: "boolean" },
        exportProfile: { type: "string" },
        exportOutput: { type: "string" },
        verbose: { type: "boolean" },
        help: { type: "boolean" },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const o = parsed.values;
  if (o.help) throw new UsageError("");
  const sources = [o.deploy, o.onnx, o.loadEngine].filter((v) => v !== undefined).length;
  if (sources !== 1) throw new UsageError("give exactly one of --deploy, --onnx or --loadEngine");
  if (o.deploy && !o.output?.length) {
    throw new UsageError("--deploy needs at least one --output=BLOB");
  }
  if (o.model && !o.deploy) throw new UsageError("--model goes with --deploy");
  const batch = int(o.batch, "batch", 1);
  const iterations = int(o.iterations, "iterations", 10);
  const avgRuns = int(o.avgRuns, "avgRuns", 10);
  const workspaceMiB = int(o.workspace, "workspace", 64);
  const device = (o.device ?? "auto") as kiln.DeviceSpec;
  const logger = new kiln.Logger(o.verbose ? "verbose" : "warning");
  if ((o.calib || o.ranges) && !o.int8) throw new UsageError("--calib and --ranges go with --int8");
  if (o.calib && o.ranges) throw new UsageError("give --calib or --ranges, not both");
  if (o.loadEngine && (o.fp16 || o.int8)) {
    throw new UsageError("--fp16/--int8 choose precisions at build time, not with --loadEngine");
  }

  let engine: kiln.Engine;
  if (o.loadEngine) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(o.loadEngine);
    } catch (e) {
      throw new kiln.KilnError("IO_ERROR", `cannot read ${o.loadEngine}: ${(e as Error).message}`, {
        file: o.loadEngine,
        cause: e,
      });
    }
    engine = await kiln.deserializeEngine(bytes, { device, logger });
    out(
      `[kilnexec] loaded ${o.loadEngine} (${engine.layers.length} layers, ${engine.device.name})`,
    );
  } else {
    const bar = kiln.progress("kilnexec", 2);
    bar.update(0, "parsing");
    let network: kiln.Network;
    if (o.deploy) {
      const r = await kiln.parseCaffe({ deploy: o.deploy, model: o.model, logger });
      for (const d of r.diagnostics) logger.info(d.message);
      for (const name of o.output!) {
        const t = r.blobs.get(name);
        if (!t) {
          throw new kiln.KilnError(
            "INVALID_ARGUMENT",
            `--output=${name}: no blob "${name}" in ${o.deploy}`,
            {
              file: o.deploy,
              tensor: name,
            },
          );
        }
        r.network.markOutput(t);
      }
      network = r.network;
    } else {
      const r = await kiln.parseOnnx(o.onnx!);
      for (const d of r.diagnostics) logger.info(d.message);
      network = r.network;
    }
    bar.update(1, "building");
    engine = await kiln.buildEngine(network, {
      maxBatchSize: batch,
      device,
      workspaceBytes: workspaceMiB << 20,
      logger,
      fp16: o.fp16,
      int8: o.int8,
      calibrator: o.int8 ? await int8Scales(network, o, logger) : undefined,
    });
    bar.finish("built");
    out(
      `[kilnexec] built ${engine.layers.length} layers for ${engine.device.name}, maxBatchSize ${batch}`,
    );
    if (o.engine) {
      await writeAtomic(o.engine, engine.serialize());
      out(`[kilnexec] saved the plan to ${o.engine}`);
    }
  }
  if (batch > engine.maxBatchSize) {
    throw new kiln.KilnError(
      "INVALID_ARGUMENT",
      `--batch=${batch} exceeds the engine's maxBatchSize ${engine.maxBatchSize}`,
    );
  }

  const given = new Map<string, string>();
  for (const spec of o.loadInputs ?? []) {
    const at = spec.indexOf(":");
    if (at <= 0) throw new UsageError(`--loadInputs takes NAME:FILE, got "${spec}"`);
    given.set(spec.slice(0, at), spec);
  }
  const inputs: Record<string, kiln.HostArray> = {};
  let seed = 1;
  for (const b of engine.bindings.filter((b) => b.isInput)) {
    const spec = given.get(b.name);
    given.delete(b.name);
    inputs[b.name] = spec ? await loadInput(spec, b, batch) : randomInput(b, batch, seed++);
  }
  for (const name of given.keys()) {
    throw new kiln.KilnError(
      "INVALID_ARGUMENT",
      `--loadInputs names "${name}", which is not an input binding`,
      {
        tensor: name,
      },
    );
  }

  using ctx = engine.createContext();
  let outputs = await ctx.execute(inputs, { batchSize: batch }); // warm-up
  const iterationsMs: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    for (let r = 0; r < avgRuns; r++) outputs = await ctx.execute(inputs, { batchSize: batch });
    const ms = (performance.now() - t0) / avgRuns;
    iterationsMs.push(ms);
    out(
      `Average over ${avgRuns} runs is ${ms.toFixed(4)} ms${o.hostTime ? " (host walltime)" : ""}.`,
    );
  }
  const sorted = [...iterationsMs].sort((a, b) => a - b);
  out(
    `[kilnexec] batch ${batch}: median ${sorted[sorted.length >> 1].toFixed(4)} ms per run, ` +
      `${((1000 * batch) / sorted[sorted.length >> 1]).toFixed(1)} items/s`,
  );
  if (o.profile || o.exportProfile) {
    ctx.profiler.enabled = true;
    for (let r = 0; r < avgRuns; r++) await ctx.execute(inputs, { batchSize: batch });
    ctx.profiler.enabled = false;
    if (o.profile) out(ctx.profiler.table());
    if (o.exportProfile) {
      await writeAtomic(o.exportProfile, JSON.stringify(ctx.profiler.report(), null, 1));
      out(`[kilnexec] wrote the profile to ${o.exportProfile}`);
    }
  }
  if (o.exportOutput) {
    const json = Object.fromEntries(
      Object.entries(outputs).map(([k, v]) => [k, Array.from(v as ArrayLike<number>)]),
    );
    await writeAtomic(o.exportOutput, JSON.stringify(json));
    out(`[kilnexec] wrote the outputs to ${o.exportOutput}`);
  }
  for (const [name, v] of Object.entries(outputs)) {
    const head = Array.from(v as ArrayLike<number>).slice(0, 8).map((x) =>
      Number(x.toPrecision(5))
    );
    out(
      `[kilnexec] output ${name} (${v.length} values): ${head.join(" ")}${
        v.length > 8 ? " ..." : ""
      }`,
    );
  }
  return { engine, iterationsMs, outputs };
}

if (import.meta.main) {
  try {
    await kilnexec(Deno.args);
  } catch (e) {
    if (e instanceof UsageError) {
      if (e.message) console.error(`kilnexec: ${e.message}`);
      console.error(USAGE);
      Deno.exit(e.message ? 2 : 0);
    }
    if (e instanceof kiln.KilnError) {
      console.error(`kilnexec: ${e.message}`);
      Deno.exit(1);
    }
    throw e;
  }
}
