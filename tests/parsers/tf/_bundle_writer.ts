/**
 * A small TensorFlow V2 checkpoint writer for tests: it makes bundles with chosen dtypes, shards,
 * endianness, block sizes and restart intervals (so the reader meets multi-block tables and
 * prefix-compressed keys) and records where each block lies (so fuzzing can corrupt a block and
 * repair its checksum, reaching the entry and proto parsing behind it). Protos are encoded by
 * hand here, independently of the reader's protobufjs schema.
 */
import { crc32c, maskCrc } from "../../../parsers/tf/_crc32c.ts";

export interface BundleTensor {
  name: string;
  /** TensorFlow DataType enum value (1 float, 2 double, 3 int32, 7 string, 9 int64, …). */
  dtype: number;
  dims: number[];
  /** The tensor's bytes as they go into the shard. */
  bytes: Uint8Array;
  shard?: number;
  /** Store this CRC instead of the right one. */
  crcOverride?: number;
}

export interface BundleOptions {
  numShards?: number;
  bigEndian?: boolean;
  /** A data block is closed once it holds at least this many bytes. */
  blockSize?: number;
  restartInterval?: number;
  /** Compression byte written in every block trailer (0 = none). */
  compression?: number;
}

export interface Bundle {
  index: Uint8Array;
  shards: Uint8Array[];
  /** [start, end) of each block's contents in the index, the trailer at `end`. */
  blocks: { start: number; end: number }[];
}

class Bytes {
  parts: number[] = [];
  byte(b: number) {
    this.parts.push(b & 0xff);
  }
  varint(v: number) {
    while (v >= 128) {
      this.byte((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    this.byte(v);
  }
  fixed32(v: number) {
    for (let i = 0; i < 4; i++) this.byte(v >>> (8 * i));
  }
  bytes(b: ArrayLike<number>) {
    for (let i = 0; i < b.length; i++) this.byte(b[i]);
  }
  get length() {
    return this.parts.length;
  }
  done(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

/** Protobuf field helpers: tag = field << 3 | wire type. */
function fieldVarint(o: Bytes, field: number, v: number) {
  o.varint(field << 3);
  o.varint(v);
}
function fieldBytes(o: Bytes, field: number, b: Uint8Array) {
  o.varint((field << 3) | 2);
  o.varint(b.length);
  o.bytes(b);
}

function headerProto(numShards: number, bigEndian: boolean): Uint8Array {
  const o = new Bytes();
  fieldVarint(o, 1, numShards);
  if (bigEndian) fieldVarint(o, 2, 1);
  const v = new Bytes();
  fieldVarint(v, 1, 1); // producer = kTensorBundleVersion
  fieldBytes(o, 3, v.done());
  return o.done();
}

function entryProto(t: BundleTensor, offset: number, crc: number): Uint8Array {
  const o = new Bytes();
  fieldVarint(o, 1, t.dtype);
  const shape = new Bytes();
  for (const d of t.dims) {
    const dim = new Bytes();
    fieldVarint(dim, 1, d);
    fieldBytes(shape, 2, dim.done());
  }
  fieldBytes(o, 2, shape.done());
  if (t.shard) fieldVarint(o, 3, t.shard);
  if (offset) fieldVarint(o, 4, offset);
  fieldVarint(o, 5, t.bytes.length);
  o.varint((6 << 3) | 5);
  o.fixed32(maskCrc(crc));
  return o.done();
}

/** Writes a bundle: tensors are sorted by name (the table's order). */
export function writeBundle(tensors: readonly BundleTensor[], opts: BundleOptions = {}): Bundle {
  const numShards = opts.numShards ?? 1;
  const blockSize = opts.blockSize ?? 4096, interval = opts.restartInterval ?? 16;
  const shardBytes = Array.from({ length: numShards }, () => new Bytes());
  const kv: [Uint8Array, Uint8Array][] = [[
    new Uint8Array(0),
    headerProto(numShards, !!opts.bigEndian),
  ]];
  const enc = new TextEncoder();
  const sorted = [...tensors].sort((a, b) => compare(enc.encode(a.name), enc.encode(b.name)));
  for (const t of sorted) {
    const shard = shardBytes[t.shard ?? 0];
    const offset = shard.length;
    shard.bytes(t.bytes);
    kv.push([enc.encode(t.name), entryProto(t, offset, t.crcOverride ?? crc32c(t.bytes))]);
  }

  const file = new Bytes();
  const blocks: { start: number; end: number }[] = [];
  const writeBlock = (entries: [Uint8Array, Uint8Array][]) => {
    const b = new Bytes();
    const restarts: number[] = [];
    let prev: Uint8Array = new Uint8Array(0);
    entries.forEach(([k, v], i) => {
      let shared = 0;
      if (i % interval === 0) restarts.push(b.length);
      else while (shared < prev.length && shared < k.length && prev[shared] === k[shared]) shared++;
      b.varint(shared);
      b.varint(k.length - shared);
      b.varint(v.length);
      b.bytes(k.subarray(shared));
      b.bytes(v);
      prev = k;
    });
    if (restarts.length === 0) restarts.push(0);
    for (const r of restarts) b.fixed32(r);
    b.fixed32(restarts.length);
    const contents = b.done();
    const start = file.length;
    file.bytes(contents);
    const type = opts.compression ?? 0;
    file.byte(type);
    const withType = new Uint8Array(contents.length + 1);
    withType.set(contents);
    withType[contents.length] = type;
    file.fixed32(maskCrc(crc32c(withType)));
    blocks.push({ start, end: start + contents.length });
    return { offset: start, size: contents.length };
  };

  const index: [Uint8Array, Uint8Array][] = [];
  let pending: [Uint8Array, Uint8Array][] = [];
  let pendingBytes = 0;
  const flush = () => {
    if (pending.length === 0) return;
    const h = writeBlock(pending);
    const hv = new Bytes();
    hv.varint(h.offset);
    hv.varint(h.size);
    index.push([pending[pending.length - 1][0], hv.done()]);
    pending = [];
    pendingBytes = 0;
  };
  for (const e of kv) {
    pending.push(e);
    pendingBytes += e[0].length + e[1].length + 3;
    if (pendingBytes >= blockSize) flush();
  }
  flush();
  const meta = writeBlock([]);
  const ix = writeBlock(index);
  const footer = new Bytes();
  footer.varint(meta.offset);
  footer.varint(meta.size);
  footer.varint(ix.offset);
  footer.varint(ix.size);
  while (footer.length < 40) footer.byte(0);
  footer.fixed32(0x8b80fb57);
  footer.fixed32(0xdb477524);
  file.bytes(footer.done());
  return { index: file.done(), shards: shardBytes.map((s) => s.done()), blocks };
}

function compare(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** Recomputes the trailer CRC of every block (after a test has changed block bytes). */
export function repairBlockChecksums(index: Uint8Array, blocks: Bundle["blocks"]): void {
  for (const { start, end } of blocks) {
    if (end + 5 > index.length) continue;
    const crc = maskCrc(crc32c(index.subarray(start, end + 1)));
    for (let i = 0; i < 4; i++) index[end + 1 + i] = (crc >>> (8 * i)) & 0xff;
  }
}

/** Little-endian (or big-endian) bytes of a typed array's elements. */
export function bytesOf(a: ArrayBufferView, elementBytes: number, bigEndian = false): Uint8Array {
  const b = new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
  if (bigEndian) {
    for (let i = 0; i < b.length; i += elementBytes) b.subarray(i, i + elementBytes).reverse();
  }
  return b;
}
