/**
 * INT8 calibration: run the FP32 network on the CPU over the calibration batches with every
 * tensor marked as an output, collect a histogram of |x| per tensor, and choose each tensor's
 * threshold (amax) by the calibrator's algorithm; scale = amax / 127.
 *
 * The cache is checked before any batch runs. A Kiln cache whose key (structure, weights,
 * algorithm) differs is reported with the parts that changed and recalibrated; one that matches
 * there still needs the data's hash, so the batches are read (and held) first, and run only if
 * the data changed. TensorRT's caches carry no key: they are applied for the tensors whose names
 * match, with a warning that they could not be checked and a list of the tensors left without a
 * scale.
 */
import type { NetworkGraph, Tensor } from "../../dsl/ir/graph.ts";
import { isBatched, itemVolume } from "../../dsl/ir/dims.ts";
import { verifyNetwork } from "../../dsl/ir/verify.ts";
import { KilnError } from "../../errors.ts";
import { Logger } from "../../runtime/logger.ts";
import { cloneNetwork } from "../_clone.ts";
import { loadFp32Engine } from "./_fp32_engine.ts";
import { AbsHistogram, entropyThreshold, histogramQuantile } from "./_histogram.ts";
import {
  type CacheKeyPart,
  type CalibrationCache,
  type CalibrationCacheKey,
  DataHasher,
  encodeCalibrationCache,
  parseCalibrationCache,
  staleParts,
  structureHash,
  weightsHash,
} from "./cache.ts";
import {
  algorithmKey,
  type CalibrationAlgorithm,
  type Int8Calibrator,
  type LegacyParameters,
  type PercentileParameters,
} from "./calibrator.ts";

export interface CalibrationHistogram {
  /** 2049 bin edges over [0, range]. */
  edges: number[];
  /** 2048 counts of |x|. */
  counts: number[];
  /** The chosen amax (scale · 127). */
  threshold: number;
  /** The exact max |x| seen. */
  max: number;
  /** entropy2: KL divergence of each candidate, keeping 128 … 2048 bins. */
  kl?: number[];
  /** entropy2: the threshold each `kl` entry stands for. */
  klThresholds?: number[];
}

export interface CalibrationResult {
  algorithm: CalibrationAlgorithm;
  /** Tensor name → scale (amax / 127). */
  scales: Map<string, number>;
  /** Per tensor, when calibrated here (empty when the scales came from a cache). */
  histograms: Map<string, CalibrationHistogram>;
  fromCache: boolean;
  /** Why the cache the calibrator offered was not used. */
  cacheRejected?: { reasons: CacheKeyPart[]; message: string };
  /** Calibration batches seen. */
  batches: number;
}

export interface CalibrateOptions {
  logger?: Logger;
  /** The final engine's largest batch (the calibration engine takes the larger of it and batchSize). */
  maxBatchSize?: number;
}

const ALGORITHMS: readonly CalibrationAlgorithm[] = ["entropy2", "minmax", "percentile", "legacy"];

export async function calibrate(
  network: NetworkGraph,
  calibrator: Int8Calibrator,
  options: CalibrateOptions = {},
): Promise<CalibrationResult> {
  const logger = options.logger ?? new Logger();
  checkCalibrator(calibrator);
  // The calibration engine runs the calibrator's batches, whatever the final engine's bound.
  const maxBatchSize = Math.max(options.maxBatchSize ?? 1, calibrator.batchSize);
  const report = verifyNetwork(network, { throwOnError: true });
  const algorithm = calibrator.algorithm;
  const partial = {
    structure: await structureHash(network),
    weights: await weightsHash(network),
    algorithm: algorithmKey(calibrator),
  };
  const cacheFile = (calibrator as { cachePath?: string }).cachePath;
  const bytes = calibrator.readCache?.() ?? null;
  const cache = bytes ? parseCalibrationCache(bytes, cacheFile) : undefined;
  let cacheRejected: CalibrationResult["cacheRejected"];
  const reject = (reasons: CacheKeyPart[], why: string) => {
    cacheRejected = {
      reasons,
      message: `calibration cache${
        cacheFile ? ` ${cacheFile}` : ""
      } is stale (${why}); recalibrating`,
    };
    logger.warning(cacheRejected.message);
  };

  if (cache && !cache.key) {
    const mismatch = foreignAlgorithmMismatch(cache, calibrator);
    if (!mismatch) return applyForeignCache(network, cache, algorithm, logger);
    reject(["algorithm"], mismatch);
  }
  let candidate: CalibrationCacheKey | undefined;
  if (cache?.key) {
    const parts = staleParts({ ...partial, data: cache.key.data }, cache.key);
    if (parts.length) reject(parts, `changed: ${parts.join(", ")}`);
    else candidate = cache.key;
  }

  const inputs = network.inputs;
  const collectors = new Map<string, AbsHistogram>();
  const hasher = new DataHasher();
  const held: Record<string, Float32Array>[] = [];
  let runner: Runner | undefined;
  const run = async (batch: Record<string, Float32Array>, index: number) => {
    runner ??= await makeRunner(
      network,
      report.order,
      maxBatchSize,
      collectors,
      logger,
      calibrator.batchSize,
    );
    await runner.run(batch, index);
  };
  try {
    return await calibrateBatches();
  } finally {
    runner?.[Symbol.dispose]();
  }

  async function calibrateBatches(): Promise<CalibrationResult> {
    let batches = 0;
    const t0 = performance.now();
    for (;;) {
      const batch = await calibrator.getBatch();
      if (batch === null || batch === undefined) break;
      checkBatch(batch, batches, inputs, calibrator.batchSize);
      await hasher.add(batch);
      if (candidate) {
        // Held until the data's hash decides: a stream may reuse its buffers, so keep copies.
        held.push(Object.fromEntries(Object.entries(batch).map(([k, v]) => [k, v.slice()])));
      } else {
        await run(batch, batches);
      }
      batches++;
    }
    if (batches === 0) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        "the calibrator gave no batch (getBatch returned null at once)",
      );
    }
    const data = await hasher.digest();
    if (candidate && cache) {
      if (candidate.data === data) {
        logger.info(
          `calibration cache${
            cacheFile ? ` ${cacheFile}` : ""
          } matches: ${cache.scales.size} scales applied`,
        );
        return { algorithm, scales: cache.scales, histograms: new Map(), fromCache: true, batches };
      }
      reject(["data"], "changed: data (the calibration batches differ)");
      for (let i = 0; i < held.length; i++) await run(held[i], i);
      held.length = 0;
    }

    const { scales, histograms } = chooseThresholds(collectors, calibrator, logger);
    logger.info(
      `calibrated ${scales.size} tensors (${algorithm}) over ${batches} batches of ${calibrator.batchSize} in ${
        ((performance.now() - t0) / 1000).toFixed(2)
      } s`,
    );
    calibrator.writeCache?.(encodeCalibrationCache(algorithm, { ...partial, data }, scales));
    return { algorithm, scales, histograms, fromCache: false, cacheRejected, batches };
  }
}

interface Runner extends Disposable {
  run(batch: Record<string, Float32Array>, index: number): Promise<void>;
}

function checkCalibrator(c: Int8Calibrator): void {
  if (c === null || typeof c !== "object" || typeof c.getBatch !== "function") {
    throw new KilnError(
      "INVALID_ARGUMENT",
      "calibrate expects an Int8Calibrator (batchSize, algorithm, getBatch())",
    );
  }
  if (!(Number.isInteger(c.batchSize) && c.batchSize >= 1)) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `calibrator batchSize must be a positive integer, got ${c.batchSize}`,
    );
  }
  if (!ALGORITHMS.includes(c.algorithm)) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `calibrator algorithm "${c.algorithm}" is not one of ${ALGORITHMS.join(", ")}`,
    );
  }
}

function checkBatch(
  batch: unknown,
  index: number,
  inputs: readonly Tensor[],
  batchSize: number,
): void {
  if (batch === null || typeof batch !== "object") {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `calibration batch ${index} is not an object of input arrays`,
    );
  }
  const b = batch as Record<string, unknown>;
  for (const name of Object.keys(b)) {
    if (!inputs.some((t) => t.name === name)) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `calibration batch ${index} has "${name}", not a network input (inputs: ${
          inputs.map((t) => t.name).join(", ")
        })`,
        { tensor: name },
      );
    }
  }
  for (const t of inputs) {
    const a = b[t.name];
    const want = isBatched(t.dims) ? batchSize * itemVolume(t.dims) : itemVolume(t.dims);
    if (!(a instanceof Float32Array) || a.length !== want) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `calibration batch ${index}: input "${t.name}" must be a Float32Array of ${want} values (batch ${batchSize}), got ${
          a instanceof Float32Array
            ? `${a.length} values`
            : a === undefined
            ? "nothing"
            : Object.prototype.toString.call(a)
        }`,
        { tensor: t.name },
      );
    }
  }
}

/** Builds the FP32 network on the CPU with every float tensor an output; returns a batch runner. */
async function makeRunner(
  network: NetworkGraph,
  order: NetworkGraph["layers"],
  maxBatchSize: number,
  collectors: Map<string, AbsHistogram>,
  logger: Logger,
  calibratorBatch: number,
): Promise<Runner> {
  const graph = cloneNetwork(network, order);
  const marked = new Set(graph.outputs);
  for (const l of graph.layers) {
    for (const t of l.outputs) {
      if (t.dtype === "float32" && !marked.has(t)) {
        marked.add(t);
        graph.outputs.push(t);
      }
    }
  }
  // No pass runs: every tensor of the user's network must exist to be measured.
  const engine = await loadFp32Engine(graph, graph.layers, maxBatchSize, logger);
  const ctx = engine.createContext();
  const floatInputs = network.inputs.filter((t) => t.dtype === "float32").map((t) => t.name);
  const floatOutputs = new Set([...marked].filter((t) => t.dtype === "float32").map((t) => t.name));
  const collect = (name: string, values: Float32Array, index: number) => {
    let h = collectors.get(name);
    if (!h) collectors.set(name, h = new AbsHistogram());
    const bad = h.add(values);
    if (bad >= 0) {
      throw new KilnError(
        "INVALID_NETWORK",
        `tensor "${name}" has the non-finite value ${
          values[bad]
        } at element ${bad} of calibration batch ${index}; it cannot be calibrated`,
        { tensor: name },
      );
    }
  };
  return {
    async run(batch: Record<string, Float32Array>, index: number) {
      for (const n of floatInputs) collect(n, batch[n], index);
      const outs = await ctx.execute(batch, { batchSize: calibratorBatch });
      for (const [name, values] of Object.entries(outs)) {
        if (floatOutputs.has(name)) collect(name, values as Float32Array, index);
      }
    },
    [Symbol.dispose]() {
      ctx[Symbol.dispose]();
      engine[Symbol.dispose]();
    },
  };
}

function chooseThresholds(
  collectors: Map<string, AbsHistogram>,
  calibrator: Int8Calibrator,
  logger: Logger,
): { scales: Map<string, number>; histograms: Map<string, CalibrationHistogram> } {
  const scales = new Map<string, number>();
  const histograms = new Map<string, CalibrationHistogram>();
  const p = calibrator as Partial<PercentileParameters & LegacyParameters>;
  for (const [name, h] of collectors) {
    let threshold: number, kl: number[] | undefined, klThresholds: number[] | undefined;
    switch (calibrator.algorithm) {
      case "entropy2":
        ({ threshold, kl, klThresholds } = entropyThreshold(h));
        break;
      case "minmax":
        threshold = h.max;
        break;
      case "percentile":
        threshold = histogramQuantile(h, (p.percentile ?? 99.99) / 100);
        break;
      case "legacy":
        threshold = Math.min(
          histogramQuantile(h, p.quantile ?? 0.999999),
          (p.regressionCutoff ?? 1) * h.max,
        );
        break;
    }
    if (!(threshold > 0)) {
      // An all-zero tensor: any scale represents it exactly; 1/127 keeps the scale positive.
      logger.warning(
        `tensor "${name}" was zero on every calibration batch; its scale is set to 1/127`,
      );
      threshold = 1;
    }
    const scale = Math.fround(threshold / 127);
    scales.set(name, scale);
    histograms.set(name, {
      edges: h.edges(),
      counts: Array.from(h.counts),
      threshold,
      max: h.max,
      ...(kl ? { kl, klThresholds } : {}),
    });
  }
  return { scales, histograms };
}

function foreignAlgorithmMismatch(cache: CalibrationCache, c: Int8Calibrator): string | undefined {
  if (cache.algorithm !== c.algorithm) {
    return `changed: algorithm (the cache was made by ${cache.algorithm}, the calibrator is ${c.algorithm})`;
  }
  if (cache.legacy) {
    const p = c as Partial<LegacyParameters>;
    const q = p.quantile ?? 0.999999, r = p.regressionCutoff ?? 1;
    if (cache.legacy.quantile !== q || cache.legacy.regressionCutoff !== r) {
      return `changed: algorithm (legacy quantile ${cache.legacy.quantile} and cutoff ${cache.legacy.regressionCutoff} in the cache, ${q} and ${r} asked)`;
    }
  }
  return undefined;
}

function applyForeignCache(
  network: NetworkGraph,
  cache: CalibrationCache,
  algorithm: CalibrationAlgorithm,
  logger: Logger,
): CalibrationResult {
  const scales = new Map<string, number>();
  const unknown: string[] = [];
  for (const [name, s] of cache.scales) {
    if (network.tensors.has(name)) scales.set(name, s);
    else unknown.push(name);
  }
  const floats = [...network.tensors.values()].filter((t) => t.dtype === "float32").map((t) =>
    t.name
  );
  const missing = floats.filter((n) => !scales.has(n));
  logger.warning(
    `calibration cache written by TensorRT ${cache.version} carries no key: it cannot be checked against this network, its weights or data; applied to ${scales.size} tensors by name` +
      (unknown.length
        ? `; ${unknown.length} names are not in the network: ${unknown.join(", ")}`
        : "") +
      (missing.length ? `; ${missing.length} tensors have no scale: ${missing.join(", ")}` : ""),
  );
  return { algorithm, scales, histograms: new Map(), fromCache: true, batches: 0 };
}
