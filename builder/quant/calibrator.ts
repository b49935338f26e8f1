/**
 * INT8 calibrators, as TensorRT's IInt8Calibrator: a batch size, `getBatch()` handing out
 * calibration inputs until it returns null, and an optional cache (`readCache`/`writeCache`).
 * The algorithm decides how each tensor's threshold (amax; scale = amax / 127) is chosen from its
 * |x| histogram (see builder/quant/_histogram.ts and calibrate.ts):
 *  - entropy2: the threshold minimizing KL(P‖Q) between the distribution and its 128-level
 *    quantization (TensorRT's default, IInt8EntropyCalibrator2);
 *  - minmax: the max |x| seen (IInt8MinMaxCalibrator);
 *  - percentile: the given percentile of |x| (default 99.99; Kiln's, after pytorch-quantization);
 *  - legacy: IInt8LegacyCalibrator's parameters, a quantile and a regression cutoff. TensorRT does
 *    not document its regression; Kiln takes min(quantile of |x|, cutoff · max |x|), which is what
 *    the two parameters bound (with TensorRT's defaults 0.99999… and 1.0: the quantile).
 */
import { KilnError } from "../../errors.ts";
import type { CalibrationStream } from "./batch_stream.ts";
import { type CalibrationAlgorithm, writeFileAtomic } from "./cache.ts";

export type { CalibrationAlgorithm } from "./cache.ts";

export interface Int8Calibrator {
  /** Items per batch that getBatch returns. */
  batchSize: number;
  algorithm: CalibrationAlgorithm;
  /** Input binding name → float32 data of `batchSize` items; null when there is no more data. */
  getBatch():
    | Record<string, Float32Array>
    | null
    | Promise<Record<string, Float32Array> | null>;
  /** A cache written earlier, or null to calibrate. */
  readCache?(): Uint8Array | null;
  writeCache?(bytes: Uint8Array): void;
}

/** The percentile calibrator's option; the legacy calibrator's two. */
export interface PercentileParameters {
  percentile: number;
}
export interface LegacyParameters {
  quantile: number;
  regressionCutoff: number;
}

export interface CalibratorOptions {
  /** Where the cache is read from and written to (atomically); none: no cache. */
  cachePath?: string;
  /** Read an existing cache (default true); false recalibrates and overwrites it. */
  readCache?: boolean;
}

abstract class StreamCalibrator implements Int8Calibrator {
  abstract readonly algorithm: CalibrationAlgorithm;
  readonly cachePath: string | undefined;
  readonly #readCache: boolean;

  constructor(readonly stream: CalibrationStream, options: CalibratorOptions = {}) {
    if (!stream || typeof stream.next !== "function") {
      throw new KilnError(
        "INVALID_ARGUMENT",
        "a calibrator needs a stream with next() (BatchStream, ArrayBatchStream)",
      );
    }
    this.cachePath = options.cachePath;
    this.#readCache = options.readCache ?? true;
  }

  get batchSize(): number {
    return this.stream.batchSize;
  }

  getBatch(): Record<string, Float32Array> | null {
    return this.stream.next();
  }

  readCache(): Uint8Array | null {
    if (this.cachePath === undefined || !this.#readCache) return null;
    try {
      return Deno.readFileSync(this.cachePath);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw new KilnError("IO_ERROR", `cannot read calibration cache: ${(e as Error).message}`, {
        file: this.cachePath,
        cause: e,
      });
    }
  }

  writeCache(bytes: Uint8Array): void {
    if (this.cachePath !== undefined) writeFileAtomic(this.cachePath, bytes);
  }
}

/** TensorRT's default: per-tensor thresholds minimizing the KL divergence. */
export class EntropyCalibrator2 extends StreamCalibrator {
  readonly algorithm = "entropy2" as const;
}

/** Thresholds at the max |x| over the calibration set. */
export class MinMaxCalibrator extends StreamCalibrator {
  readonly algorithm = "minmax" as const;
}

/** Thresholds at a percentile of |x| (default 99.99). */
export class PercentileCalibrator extends StreamCalibrator implements PercentileParameters {
  readonly algorithm = "percentile" as const;
  readonly percentile: number;

  constructor(
    stream: CalibrationStream,
    options: CalibratorOptions & { percentile?: number } = {},
  ) {
    super(stream, options);
    this.percentile = options.percentile ?? 99.99;
    if (!(this.percentile > 0 && this.percentile <= 100)) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `percentile must lie in (0, 100], got ${this.percentile}`,
      );
    }
  }
}

/** TensorRT's legacy calibrator: min(quantile of |x|, regressionCutoff · max |x|). */
export class LegacyCalibrator extends StreamCalibrator implements LegacyParameters {
  readonly algorithm = "legacy" as const;
  readonly quantile: number;
  readonly regressionCutoff: number;

  constructor(
    stream: CalibrationStream,
    options: CalibratorOptions & { quantile?: number; regressionCutoff?: number } = {},
  ) {
    super(stream, options);
    // The defaults of TensorRT's sampleINT8 legacy table (its header holds 1.0 and 0.999999).
    this.quantile = options.quantile ?? 0.999999;
    this.regressionCutoff = options.regressionCutoff ?? 1;
    for (
      const [n, v] of [["quantile", this.quantile], [
        "regressionCutoff",
        this.regressionCutoff,
      ]] as const
    ) {
      if (!(v > 0 && v <= 1)) {
        throw new KilnError("INVALID_ARGUMENT", `${n} must lie in (0, 1], got ${v}`);
      }
    }
  }
}

/** The algorithm with its parameters, as the cache key records it (e.g. "percentile:99.99"). */
export function algorithmKey(c: Int8Calibrator): string {
  const p = c as Partial<PercentileParameters & LegacyParameters>;
  switch (c.algorithm) {
    case "percentile":
      return `percentile:${p.percentile ?? 99.99}`;
    case "legacy":
      return `legacy:${p.quantile ?? 0.999999}:${p.regressionCutoff ?? 1}`;
    default:
      return c.algorithm;
  }
}
