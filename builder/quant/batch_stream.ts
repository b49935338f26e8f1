/**
 * Calibration data streams. `BatchStream` reads TensorRT's batch files (sampleINT8, sampleSSD):
 * four little-endian int32 N, C, H, W, then N·C·H·W float32, then optionally N int32 labels;
 * the images of consecutive files are regrouped into batches of `batchSize`, as TensorRT's
 * BatchStream does. `ArrayBatchStream` cuts in-memory arrays into batches.
 */
import { KilnError } from "../../errors.ts";

/** A source of calibration batches: input binding name → float32 data of `batchSize` items. */
export interface CalibrationStream {
  readonly batchSize: number;
  /** The next batch, or null when the data is exhausted. */
  next(): Record<string, Float32Array> | null;
  /** Starts again from the first batch. */
  reset(): void;
}

/** One parsed batch file. */
export interface BatchFile {
  dims: [number, number, number, number];
  data: Float32Array;
  labels?: Int32Array;
}

const HEADER_BYTES = 16;
/** Refuse files that claim more than this many floats (a corrupt header, not a real batch). */
const MAX_ELEMENTS = 1 << 28;

/** Parses the bytes of a TensorRT batch file; every malformation is a KilnError with file and offset. */
export function parseBatchFile(bytes: Uint8Array, file = "<batch>"): BatchFile {
  if (bytes.length < HEADER_BYTES) {
    throw new KilnError(
      "PARSE_ERROR",
      `batch file is ${bytes.length} bytes; the header alone (int32 N, C, H, W) needs ${HEADER_BYTES}`,
      { file, offset: bytes.length },
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = [0, 1, 2, 3].map((i) => view.getInt32(4 * i, true)) as BatchFile["dims"];
  dims.forEach((d, i) => {
    if (d < 1) {
      throw new KilnError(
        "PARSE_ERROR",
        `batch file header: ${"NCHW"[i]} is ${d}; every dimension must be at least 1`,
        { file, offset: 4 * i },
      );
    }
  });
  const count = dims[0] * dims[1] * dims[2] * dims[3];
  if (count > MAX_ELEMENTS) {
    throw new KilnError(
      "PARSE_ERROR",
      `batch file header N,C,H,W = ${
        dims.join(",")
      } claims ${count} floats (more than ${MAX_ELEMENTS})`,
      { file, offset: 0 },
    );
  }
  const dataEnd = HEADER_BYTES + 4 * count;
  const withLabels = dataEnd + 4 * dims[0];
  if (bytes.length !== dataEnd && bytes.length !== withLabels) {
    throw new KilnError(
      "PARSE_ERROR",
      `batch file is ${bytes.length} bytes; N,C,H,W = ${
        dims.join(",")
      } needs ${dataEnd} (no labels) or ${withLabels} (with ${dims[0]} int32 labels)`,
      { file, offset: Math.min(bytes.length, dataEnd) },
    );
  }
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const v = view.getFloat32(HEADER_BYTES + 4 * i, true);
    if (!Number.isFinite(v)) {
      throw new KilnError("PARSE_ERROR", `batch file value ${i} is ${v}; data must be finite`, {
        file,
        offset: HEADER_BYTES + 4 * i,
      });
    }
    data[i] = v;
  }
  let labels: Int32Array | undefined;
  if (bytes.length === withLabels) {
    labels = new Int32Array(dims[0]);
    for (let i = 0; i < dims[0]; i++) labels[i] = view.getInt32(dataEnd + 4 * i, true);
  }
  return { dims, data, labels };
}

/** Writes a TensorRT batch file's bytes (the inverse of parseBatchFile). */
export function encodeBatchFile(b: BatchFile): Uint8Array {
  const count = b.dims.reduce((a, d) => a * d, 1);
  if (b.data.length !== count) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `batch data has ${b.data.length} values; N,C,H,W = ${b.dims.join(",")} needs ${count}`,
    );
  }
  const bytes = new Uint8Array(HEADER_BYTES + 4 * count + (b.labels ? 4 * b.dims[0] : 0));
  const view = new DataView(bytes.buffer);
  b.dims.forEach((d, i) => view.setInt32(4 * i, d, true));
  for (let i = 0; i < count; i++) view.setFloat32(HEADER_BYTES + 4 * i, b.data[i], true);
  b.labels?.forEach((l, i) => view.setInt32(HEADER_BYTES + 4 * count + 4 * i, l, true));
  return bytes;
}

export interface BatchStreamOptions {
  /** Images per calibration batch. */
  batchSize: number;
  /** The input binding the images feed. Default "data". */
  inputName?: string;
  /** Stop after this many batches. */
  maxBatches?: number;
}

/**
 * Reads TensorRT batch files in order and hands out batches of `batchSize` images (a file's
 * images may span batches). The last partial batch is dropped, as in TensorRT's BatchStream.
 * The labels of the images of the last batch are in `labels`.
 */
export class BatchStream implements CalibrationStream {
  readonly batchSize: number;
  readonly inputName: string;
  readonly maxBatches: number;
  /** Labels of the last batch's images, when its files carry labels. */
  labels: Int32Array | undefined;
  /** C·H·W of the images (known after the first file). */
  imageSize = 0;
  #fileIndex = 0;
  #pending: BatchFile[] = [];
  #pendingOffset = 0;
  #batches = 0;

  constructor(readonly files: readonly string[], options: BatchStreamOptions) {
    if (!(Number.isInteger(options.batchSize) && options.batchSize >= 1)) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `batchSize must be a positive integer, got ${options.batchSize}`,
      );
    }
    this.batchSize = options.batchSize;
    this.inputName = options.inputName ?? "data";
    this.maxBatches = options.maxBatches ?? Infinity;
  }

  /** The files `<prefix>0<suffix>`, `<prefix>1<suffix>`, … that exist (TensorRT's naming). */
  static numbered(prefix: string, suffix = "", options: BatchStreamOptions): BatchStream {
    const files: string[] = [];
    for (let i = 0;; i++) {
      const f = `${prefix}${i}${suffix}`;
      try {
        if (!Deno.statSync(f).isFile) break;
      } catch {
        break;
      }
      files.push(f);
    }
    return new BatchStream(files, options);
  }

  reset(): void {
    this.#fileIndex = 0;
    this.#pending = [];
    this.#pendingOffset = 0;
    this.#batches = 0;
    this.labels = undefined;
  }

  next(): Record<string, Float32Array> | null {
    if (this.#batches >= this.maxBatches) return null;
    while (this.#available() < this.batchSize) {
      if (this.#fileIndex >= this.files.length) return null;
      const file = this.files[this.#fileIndex++];
      let bytes: Uint8Array;
      try {
        bytes = Deno.readFileSync(file);
      } catch (e) {
        throw new KilnError("IO_ERROR", `cannot read batch file: ${(e as Error).message}`, {
          file,
          cause: e,
        });
      }
      const b = parseBatchFile(bytes, file);
      const size = b.dims[1] * b.dims[2] * b.dims[3];
      if (this.imageSize && size !== this.imageSize) {
        throw new KilnError(
          "PARSE_ERROR",
          `batch file images are C·H·W = ${size} values; earlier files had ${this.imageSize}`,
          { file, offset: 4 },
        );
      }
      this.imageSize = size;
      this.#pending.push(b);
    }
    const out = new Float32Array(this.batchSize * this.imageSize);
    const labels = new Int32Array(this.batchSize);
    let hasLabels = true, filled = 0;
    while (filled < this.batchSize) {
      const b = this.#pending[0];
      const take = Math.min(this.batchSize - filled, b.dims[0] - this.#pendingOffset);
      out.set(
        b.data.subarray(
          this.#pendingOffset * this.imageSize,
          (this.#pendingOffset + take) * this.imageSize,
        ),
        filled * this.imageSize,
      );
      if (b.labels) {
        labels.set(b.labels.subarray(this.#pendingOffset, this.#pendingOffset + take), filled);
      } else hasLabels = false;
      filled += take;
      this.#pendingOffset += take;
      if (this.#pendingOffset === b.dims[0]) {
        this.#pending.shift();
        this.#pendingOffset = 0;
      }
    }
    this.labels = hasLabels ? labels : undefined;
    this.#batches++;
    return { [this.inputName]: out };
  }

  #available(): number {
    return this.#pending.reduce((a, b) => a + b.dims[0], 0) - this.#pendingOffset;
  }
}

export interface ArrayBatchStreamOptions {
  batchSize: number;
  /** Items in each array (its length must be a multiple). */
  count: number;
  /** Stop after this many batches. */
  maxBatches?: number;
}

/** Batches over in-memory arrays: input name → `count` items one after another. */
export class ArrayBatchStream implements CalibrationStream {
  readonly batchSize: number;
  readonly count: number;
  readonly maxBatches: number;
  #next = 0;
  #sizes: Record<string, number> = {};

  constructor(readonly arrays: Record<string, Float32Array>, options: ArrayBatchStreamOptions) {
    const { batchSize, count } = options;
    if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `batchSize must be a positive integer, got ${batchSize}`,
      );
    }
    if (!(Number.isInteger(count) && count >= 1)) {
      throw new KilnError("INVALID_ARGUMENT", `count must be a positive integer, got ${count}`);
    }
    for (const [name, a] of Object.entries(arrays)) {
      if (!(a instanceof Float32Array) || a.length % count !== 0 || a.length === 0) {
        throw new KilnError(
          "INVALID_ARGUMENT",
          `calibration array "${name}" must be a Float32Array of ${count} items (got ${
            a instanceof Float32Array ? `${a.length} values` : typeof a
          })`,
          { tensor: name },
        );
      }
      this.#sizes[name] = a.length / count;
    }
    this.batchSize = batchSize;
    this.count = count;
    this.maxBatches = options.maxBatches ?? Infinity;
  }

  reset(): void {
    this.#next = 0;
  }

  /** The next `batchSize` items of every array; the last partial batch is dropped. */
  next(): Record<string, Float32Array> | null {
    const start = this.#next * this.batchSize;
    if (this.#next >= this.maxBatches || start + this.batchSize > this.count) return null;
    this.#next++;
    const out: Record<string, Float32Array> = {};
    for (const [name, a] of Object.entries(this.arrays)) {
      const s = this.#sizes[name];
      out[name] = a.slice(start * s, (start + this.batchSize) * s);
    }
    return out;
  }
}
