/**
 * TensorFlow V2 checkpoints ("tensor bundles") read directly, with no TensorFlow.
 *
 * A checkpoint `model-85340` is `model-85340.index` plus data shards
 * `model-85340.data-00000-of-00001` (one per shard). The index is a LevelDB-format table
 * (`_sstable.ts`): the empty key holds a `BundleHeaderProto` (shard count, endianness, version),
 * every other key is a tensor name whose value is a `BundleEntryProto` (dtype, shape, shard,
 * byte offset and size in that shard, masked CRC-32C of those bytes). The protos are decoded
 * with protobufjs from `tensor_bundle.proto` beside this file.
 *
 * Every tensor read is checked: its size against its shape, its bytes against the end of its
 * shard, and its CRC-32C, before anything is allocated for it. A corrupt or truncated file is a
 * `KilnError` (PARSE_ERROR) naming the file, the tensor and the byte offset.
 */
import protobuf from "protobufjs";
import { KilnError } from "../../errors.ts";
import { crc32c, unmaskCrc } from "./_crc32c.ts";
import { readTable } from "./_sstable.ts";

/** The element types read into typed arrays. */
export type CheckpointDType =
  | "float32"
  | "float64"
  | "int32"
  | "int64"
  | "float16"
  | "bool"
  | "int8"
  | "uint8";

/**
 * The typed array each dtype is read into: float16 as its raw bits (as Kiln's float16 host
 * arrays), bool as 0/1 bytes.
 */
export interface CheckpointArrays {
  float32: Float32Array;
  float64: Float64Array;
  int32: Int32Array;
  int64: BigInt64Array;
  float16: Uint16Array;
  bool: Uint8Array;
  int8: Int8Array;
  uint8: Uint8Array;
}

/** A tensor read from a checkpoint; `dtype` tells the type of `values`. */
export type CheckpointTensor = {
  [D in CheckpointDType]: {
    dtype: D;
    /** Row-major dims ([] for a scalar). */
    dims: number[];
    values: CheckpointArrays[D];
  };
}[CheckpointDType];

/** One index entry as stored, whether or not its values are read. */
export interface CheckpointEntry {
  name: string;
  /** TensorFlow's name for the element type (`DT_FLOAT`, `DT_STRING`, …). */
  tfDType: string;
  dims: number[];
  shard: number;
  /** Byte offset and size of the tensor's bytes in its shard. */
  offset: number;
  size: number;
  /** The CRC-32C of those bytes (unmasked). */
  crc32c: number;
  /** Number of slices of a partitioned variable (0 for an ordinary tensor). */
  slices: number;
}

export interface CheckpointHeader {
  numShards: number;
  endianness: "little" | "big";
  producer: number;
  minConsumer: number;
}

/** A tensor that is in the index but not returned, and why. */
export interface SkippedTensor {
  name: string;
  reason: string;
}

/** The tensors of a checkpoint by name, with the header, every entry and what was skipped. */
export class Checkpoint extends Map<string, CheckpointTensor> {
  header!: CheckpointHeader;
  index!: readonly CheckpointEntry[];
  skipped!: readonly SkippedTensor[];

  /** The float32 tensor `name` (its dims and values), or an error naming what is there. */
  float32(name: string): { dims: number[]; values: Float32Array } {
    const t = this.get(name);
    if (t?.dtype === "float32") return t;
    const why = t
      ? `is ${t.dtype}`
      : this.index.some((e) => e.name === name)
      ? "was not read"
      : "is not in the checkpoint";
    throw new KilnError("INVALID_ARGUMENT", `tensor "${name}" ${why}; float32 expected`, {
      tensor: name,
    });
  }
}

export interface CheckpointOptions {
  /** Read only these tensors (each must exist); all readable tensors when omitted. */
  names?: readonly string[];
  /** The checkpoint's path prefix, used in messages by `parseCheckpoint` ("checkpoint"). */
  prefix?: string;
}

/** The DataTypes read into typed arrays, with their element size. */
const READABLE: Record<string, { dtype: CheckpointDType; bytes: number }> = {
  DT_FLOAT: { dtype: "float32", bytes: 4 },
  DT_DOUBLE: { dtype: "float64", bytes: 8 },
  DT_INT32: { dtype: "int32", bytes: 4 },
  DT_UINT8: { dtype: "uint8", bytes: 1 },
  DT_INT8: { dtype: "int8", bytes: 1 },
  DT_INT64: { dtype: "int64", bytes: 8 },
  DT_BOOL: { dtype: "bool", bytes: 1 },
  DT_HALF: { dtype: "float16", bytes: 2 },
};

/** TensorShape's limit on rank. */
const MAX_RANK = 254;

/** The name of data shard `shard` of `numShards` (TensorFlow's `%s.data-%05d-of-%05d`). */
export function checkpointShardName(prefix: string, shard: number, numShards: number): string {
  const p5 = (n: number) => String(n).padStart(5, "0");
  return `${prefix}.data-${p5(shard)}-of-${p5(numShards)}`;
}

/** Reads a checkpoint from its path prefix (e.g. `…/model-85340`). */
export async function readCheckpoint(
  prefix: string,
  options: Omit<CheckpointOptions, "prefix"> = {},
): Promise<Checkpoint> {
  const indexFile = `${prefix}.index`;
  const index = decodeIndex(await readFileBytes(indexFile), indexFile);
  const wanted = selectEntries(index, options.names, indexFile);
  const needed = new Set(wanted.map((e) => e.shard));
  const shards: Uint8Array[] = [];
  for (let s = 0; s < index.header.numShards; s++) {
    // Shards holding nothing wanted are not read.
    const name = checkpointShardName(prefix, s, index.header.numShards);
    shards.push(needed.has(s) ? await readFileBytes(name) : new Uint8Array(0));
  }
  return readTensors(index, wanted, shards, prefix);
}

/** Reads a checkpoint from the bytes of its index and of its data shards (in shard order). */
export function parseCheckpoint(
  indexBytes: Uint8Array,
  shards: readonly Uint8Array[],
  options: CheckpointOptions = {},
): Checkpoint {
  const prefix = options.prefix ?? "checkpoint";
  const indexFile = `${prefix}.index`;
  const index = decodeIndex(indexBytes, indexFile);
  if (shards.length !== index.header.numShards) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `${indexFile} names ${index.header.numShards} data shard(s); ${shards.length} given`,
      { file: indexFile },
    );
  }
  return readTensors(index, selectEntries(index, options.names, indexFile), shards, prefix);
}

async function readFileBytes(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    throw new KilnError("IO_ERROR", `cannot read checkpoint file "${path}": ${message(e)}`, {
      file: path,
      cause: e,
    });
  }
}

interface DecodedIndex {
  header: CheckpointHeader;
  entries: CheckpointEntry[];
  skipped: SkippedTensor[];
}

// deno-lint-ignore no-explicit-any
type Msg = Record<string, any>;

interface BundleSchema {
  header: protobuf.Type;
  entry: protobuf.Type;
  dtypeNames: Record<number, string>;
}

let schema: BundleSchema | undefined;

function bundleSchema(): BundleSchema {
  if (schema) return schema;
  const url = new URL("./tensor_bundle.proto", import.meta.url);
  let text: string;
  try {
    text = Deno.readTextFileSync(url);
  } catch (e) {
    throw new KilnError("IO_ERROR", `cannot read Kiln's schema ${url.href}: ${message(e)}`, {
      file: url.href,
      cause: e,
    });
  }
  // keepCase: fields keep their .proto names (num_shards, shard_id, …).
  const root = protobuf.parse(text, { keepCase: true }).root;
  schema = {
    header: root.lookupType("tensorflow.BundleHeaderProto"),
    entry: root.lookupType("tensorflow.BundleEntryProto"),
    dtypeNames: root.lookupEnum("tensorflow.DataType").valuesById,
  };
  return schema;
}

function decodeIndex(indexBytes: Uint8Array, indexFile: string): DecodedIndex {
  const s = bundleSchema();
  const table = readTable(indexBytes, indexFile);
  if (table.length === 0 || table[0].keyBytes.length !== 0) {
    throw new KilnError(
      "PARSE_ERROR",
      `${indexFile}: no bundle header (the empty key) — not a TensorFlow V2 checkpoint index`,
      { file: indexFile, offset: table[0]?.offset ?? 0 },
    );
  }
  const h = decodeProto(s.header, table[0].value, indexFile, table[0].offset, undefined);
  const header = checkHeader(h, indexFile, table[0].offset);

  const entries: CheckpointEntry[] = [];
  const skipped: SkippedTensor[] = [];
  for (const t of table.slice(1)) {
    const name = t.key;
    if (t.keyBytes[0] === 0) {
      // Keys of slices of partitioned variables are binary (OrderedCode) encodings.
      skipped.push({ name, reason: "a slice of a partitioned variable (not assembled)" });
      continue;
    }
    const e = decodeProto(s.entry, t.value, indexFile, t.offset, name);
    const where = { file: indexFile, offset: t.offset, tensor: name };
    const bad = (what: string): never => {
      throw new KilnError(
        "PARSE_ERROR",
        `${indexFile}: tensor "${name}": ${what} (entry at byte ${t.offset})`,
        where,
      );
    };
    const shape: Msg = e.shape ?? {};
    if (shape.unknown_rank) bad("shape of unknown rank");
    const dimsIn: Msg[] = shape.dim ?? [];
    if (dimsIn.length > MAX_RANK) bad(`rank ${dimsIn.length} exceeds ${MAX_RANK}`);
    const dims = dimsIn.map((d, i) => {
      const v = int64(d.size);
      if (!(v >= 0)) bad(`dimension ${i} is ${String(d.size)}, not a size`);
      return v;
    });
    const shard = e.shard_id ?? 0, offset = int64(e.offset), size = int64(e.size);
    if (!(shard >= 0 && shard < header.numShards)) {
      bad(`shard ${shard} is not one of the ${header.numShards} data shard(s)`);
    }
    if (!(offset >= 0)) bad(`offset ${String(e.offset)} is not a byte offset`);
    if (!(size >= 0)) bad(`size ${String(e.size)} is not a byte count`);
    entries.push({
      name,
      tfDType: s.dtypeNames[e.dtype] ?? `DataType ${e.dtype}`,
      dims,
      shard,
      offset,
      size,
      crc32c: unmaskCrc((e.crc32c ?? 0) >>> 0),
      slices: (e.slices ?? []).length,
    });
  }
  return { header, entries, skipped };
}

function checkHeader(h: Msg, file: string, offset: number): CheckpointHeader {
  const bad = (code: "PARSE_ERROR" | "UNSUPPORTED", what: string): never => {
    throw new KilnError(code, `${file}: bundle header: ${what}`, { file, offset });
  };
  const numShards = h.num_shards ?? 0;
  // TensorFlow names shards with five digits; more is not a checkpoint.
  if (!(numShards >= 1 && numShards <= 99999)) bad("PARSE_ERROR", `${numShards} data shards`);
  if (h.endianness !== 0 && h.endianness !== 1) {
    bad("PARSE_ERROR", `unknown endianness ${h.endianness}`);
  }
  // Kiln reads bundle version 1 (TensorFlow's kTensorBundleVersion) like TensorFlow does.
  const v: Msg = h.version ?? {};
  const producer = v.producer ?? 0, minConsumer = v.min_consumer ?? 0;
  if (minConsumer > 1) {
    bad("UNSUPPORTED", `needs a reader of bundle version ${minConsumer}; Kiln reads version 1`);
  }
  if ((v.bad_consumers ?? []).includes(1)) {
    bad("UNSUPPORTED", "declares bundle readers of version 1 (Kiln's) unfit to read it");
  }
  return { numShards, endianness: h.endianness === 1 ? "big" : "little", producer, minConsumer };
}

function decodeProto(
  type: protobuf.Type,
  bytes: Uint8Array,
  file: string,
  offset: number,
  tensor: string | undefined,
): Msg {
  try {
    return type.decode(bytes) as unknown as Msg;
  } catch (e) {
    const what = tensor === undefined ? "bundle header" : `tensor "${tensor}"`;
    throw new KilnError(
      "PARSE_ERROR",
      `${file}: ${what}: not a valid ${type.name} (${message(e)}) at byte ${offset}`,
      { file, offset, tensor, cause: e },
    );
  }
}

/** A protobufjs int64 (number or Long) as a number; NaN when not a safe integer. */
function int64(v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === "number") return v;
  if (typeof v === "object" && "low" in v && "high" in v) {
    const { low, high, unsigned } = v as { low: number; high: number; unsigned?: boolean };
    const n = (unsigned ? high >>> 0 : high) * 4294967296 + (low >>> 0);
    return Number.isSafeInteger(n) ? n : NaN;
  }
  return NaN;
}

function selectEntries(
  index: DecodedIndex,
  names: readonly string[] | undefined,
  indexFile: string,
): CheckpointEntry[] {
  if (names === undefined) return index.entries;
  const byName = new Map(index.entries.map((e) => [e.name, e]));
  return names.map((n) => {
    const e = byName.get(n);
    if (!e) {
      const some = index.entries.slice(0, 8).map((x) => `"${x.name}"`).join(", ");
      throw new KilnError(
        "INVALID_ARGUMENT",
        `${indexFile}: no tensor "${n}" in the checkpoint (it has ${index.entries.length}: ` +
          `${some}${index.entries.length > 8 ? ", …" : ""})`,
        { file: indexFile, tensor: n },
      );
    }
    return e;
  });
}

function readTensors(
  index: DecodedIndex,
  wanted: readonly CheckpointEntry[],
  shards: readonly Uint8Array[],
  prefix: string,
): Checkpoint {
  const out = new Checkpoint();
  const skipped = [...index.skipped];
  for (const e of wanted) {
    const kind = Object.hasOwn(READABLE, e.tfDType) ? READABLE[e.tfDType] : undefined;
    if (e.slices > 0) {
      skipped.push({ name: e.name, reason: `a partitioned variable of ${e.slices} slices` });
    } else if (!kind) {
      const why = e.tfDType === "DT_STRING"
        ? "strings hold no weights"
        : "Kiln reads float32/64, float16, int8/32/64, uint8 and bool";
      skipped.push({ name: e.name, reason: `dtype ${e.tfDType} not read (${why})` });
    } else {
      const file = checkpointShardName(prefix, e.shard, index.header.numShards);
      out.set(e.name, readTensor(e, kind, shards[e.shard], file, index.header.endianness));
    }
  }
  out.header = index.header;
  out.index = index.entries;
  out.skipped = skipped;
  return out;
}

function readTensor(
  e: CheckpointEntry,
  kind: { dtype: CheckpointDType; bytes: number },
  shard: Uint8Array,
  file: string,
  endianness: "little" | "big",
): CheckpointTensor {
  const bad = (what: string): never => {
    throw new KilnError(
      "PARSE_ERROR",
      `${file}: tensor "${e.name}" at byte ${e.offset}: ${what}`,
      { file, offset: e.offset, tensor: e.name },
    );
  };
  // The element count, stopped as soon as it exceeds what `size` bytes can hold.
  const capacity = Math.floor(e.size / kind.bytes);
  let count = 1;
  for (const d of e.dims) {
    count *= d;
    if (count > capacity) break;
  }
  if (e.dims.includes(0)) count = 0;
  if (count * kind.bytes !== e.size) {
    bad(
      `${e.size} bytes stored for a ${kind.dtype} tensor of shape ` +
        `[${e.dims.join(", ")}] (${count > capacity ? "more than " + capacity : count} elements)`,
    );
  }
  if (e.offset + e.size > shard.length) {
    bad(
      `its ${e.size} bytes run past the end of the shard (${shard.length} bytes; truncated?)`,
    );
  }
  const bytes = shard.subarray(e.offset, e.offset + e.size);
  const actual = crc32c(bytes);
  if (actual !== e.crc32c) {
    bad(`checksum mismatch (stored crc32c ${hex(e.crc32c)}, computed ${hex(actual)})`);
  }
  // A copy, so the typed array is aligned and owns its memory.
  const copy = bytes.slice();
  if (endianness === "big" && kind.bytes > 1) swapBytes(copy, kind.bytes);
  return tensorOf(kind.dtype, [...e.dims], copy.buffer);
}

function tensorOf(dtype: CheckpointDType, dims: number[], buf: ArrayBuffer): CheckpointTensor {
  switch (dtype) {
    case "float32":
      return { dtype, dims, values: new Float32Array(buf) };
    case "float64":
      return { dtype, dims, values: new Float64Array(buf) };
    case "int32":
      return { dtype, dims, values: new Int32Array(buf) };
    case "int64":
      return { dtype, dims, values: new BigInt64Array(buf) };
    case "float16":
      return { dtype, dims, values: new Uint16Array(buf) };
    case "int8":
      return { dtype, dims, values: new Int8Array(buf) };
    case "bool":
    case "uint8":
      return { dtype, dims, values: new Uint8Array(buf) };
  }
}

/** Reverses each `width`-byte element in place (big-endian bundles; values assume LE hosts). */
function swapBytes(b: Uint8Array, width: number): void {
  for (let i = 0; i + width <= b.length; i += width) b.subarray(i, i + width).reverse();
}

function hex(v: number): string {
  return "0x" + v.toString(16).padStart(8, "0");
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
