/**
 * A reader for the LevelDB table format ("SSTable") as TensorFlow writes it for a checkpoint's
 * `.index` file (tensorflow/core/lib/io/{format,block,table}.cc), reading every entry in order.
 *
 * Layout, from the end of the file:
 * - a 48-byte footer: the metaindex block's handle, the index block's handle (a handle is two
 *   varint64: offset, size), zero padding, then the magic 0xdb4775248b80fb57 (fixed64, LE);
 * - blocks, each followed by a 5-byte trailer: a compression byte (0 none, 1 Snappy) and the
 *   masked CRC-32C of the block's bytes and that compression byte;
 * - a block is a run of entries (varint32 shared-prefix length, varint32 unshared length,
 *   varint32 value length, the unshared key bytes, the value), then the restart points (fixed32
 *   offsets of entries stored with no shared prefix) and their count (fixed32);
 * - the index block maps a key at or after each data block's last key to that block's handle.
 *
 * Every length read from the file is checked against the bytes that are there before it is
 * used, so a corrupt file is refused with a `KilnError` (PARSE_ERROR) naming the byte offset.
 */
import { KilnError } from "../../errors.ts";
import { crc32c, unmaskCrc } from "./_crc32c.ts";

/** The 64-bit magic, as the two little-endian 32-bit words it is stored as. */
const MAGIC_LO = 0x8b80fb57, MAGIC_HI = 0xdb477524;
const FOOTER_BYTES = 48;
const TRAILER_BYTES = 5;

export interface TableEntry {
  /** The key as bytes (TensorFlow keys are UTF-8 tensor names, but slice keys are binary). */
  keyBytes: Uint8Array;
  /** The key decoded as UTF-8 (invalid sequences become U+FFFD). */
  key: string;
  /** The value: a view into the file's bytes. */
  value: Uint8Array;
  /** Byte offset of the value in the file. */
  offset: number;
}

interface BlockHandle {
  offset: number;
  size: number;
}

/**
 * Reads varints from `bytes`, never past `limit`; errors name `file` and the offset in the file
 * (`base` is where `bytes` starts in the file).
 */
class Cursor {
  constructor(
    readonly bytes: Uint8Array,
    public pos: number,
    readonly limit: number,
    readonly file: string,
    readonly base = 0,
    readonly context = "",
  ) {}

  fail(what: string, at = this.pos): never {
    const offset = this.base + at;
    throw new KilnError("PARSE_ERROR", `${this.file}: ${this.context}${what} at byte ${offset}`, {
      file: this.file,
      offset,
    });
  }

  /** A varint of at most `maxBytes` bytes whose value must be a safe integer. */
  varint(what: string, maxBytes: number): number {
    const start = this.pos;
    let value = 0, scale = 1;
    for (let i = 0; i < maxBytes; i++) {
      if (this.pos >= this.limit) this.fail(`truncated varint (${what})`, start);
      const b = this.bytes[this.pos++];
      value += (b & 0x7f) * scale;
      if (!Number.isSafeInteger(value)) this.fail(`varint too large (${what})`, start);
      if ((b & 0x80) === 0) return value;
      scale *= 128;
    }
    return this.fail(`varint longer than ${maxBytes} bytes (${what})`, start);
  }

  varint32(what: string): number {
    const start = this.pos;
    const v = this.varint(what, 5);
    if (v > 0xffffffff) this.fail(`varint32 out of range (${what})`, start);
    return v;
  }

  varint64(what: string): number {
    return this.varint(what, 10);
  }

  handle(what: string): BlockHandle {
    return { offset: this.varint64(`${what} offset`), size: this.varint64(`${what} size`) };
  }
}

function u32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

const utf8 = new TextDecoder();

/** Reads every entry of a LevelDB-format table, in key order. */
export function readTable(bytes: Uint8Array, file: string): TableEntry[] {
  const fail = (what: string, at: number): never => {
    throw new KilnError("PARSE_ERROR", `${file}: ${what} at byte ${at}`, { file, offset: at });
  };
  if (bytes.length < FOOTER_BYTES) {
    fail(`file is ${bytes.length} bytes, shorter than a table footer (${FOOTER_BYTES})`, 0);
  }
  const footerAt = bytes.length - FOOTER_BYTES;
  const magicAt = bytes.length - 8;
  if (u32(bytes, magicAt) !== MAGIC_LO || u32(bytes, magicAt + 4) !== MAGIC_HI) {
    fail("bad table magic (not a TensorFlow checkpoint index, or truncated)", magicAt);
  }
  const footer = new Cursor(bytes, footerAt, magicAt, file);
  const metaHandle = footer.handle("metaindex handle");
  const indexHandle = footer.handle("index handle");

  const block = (h: BlockHandle, what: string, at: number): Uint8Array => {
    if (h.offset + h.size + TRAILER_BYTES > footerAt) {
      fail(
        `${what} [${h.offset}, +${h.size}) and its trailer run past the footer (byte ${footerAt})`,
        at,
      );
    }
    const end = h.offset + h.size;
    const type = bytes[end];
    const stored = unmaskCrc(u32(bytes, end + 1));
    const actual = crc32c(bytes.subarray(h.offset, end + 1));
    if (stored !== actual) {
      fail(
        `${what} checksum mismatch (stored crc32c ${hex(stored)}, computed ${hex(actual)})`,
        h.offset,
      );
    }
    if (type === 1) {
      throw new KilnError(
        "UNSUPPORTED",
        `${file}: ${what} at byte ${h.offset} is Snappy-compressed; Kiln reads only uncompressed ` +
          `checkpoint index blocks (TensorFlow writes them uncompressed)`,
        { file, offset: h.offset },
      );
    }
    if (type !== 0) fail(`${what} has unknown compression type ${type}`, end);
    return bytes.subarray(h.offset, end);
  };

  // The metaindex block is empty in TensorFlow's tables; it is checked, not used.
  parseBlock(block(metaHandle, "metaindex block", footerAt), metaHandle.offset, file, "metaindex");
  const index = parseBlock(
    block(indexHandle, "index block", footerAt),
    indexHandle.offset,
    file,
    "index",
  );

  const entries: TableEntry[] = [];
  let lastKey: Uint8Array | undefined;
  for (const ix of index) {
    const hc = new Cursor(bytes, ix.offset, ix.offset + ix.value.length, file);
    const h = hc.handle("data block handle");
    if (hc.pos !== hc.limit) fail("trailing bytes after a data block handle", hc.pos);
    const data = parseBlock(block(h, "data block", ix.offset), h.offset, file, "data");
    for (const e of data) {
      if (lastKey !== undefined && compareBytes(e.keyBytes, lastKey) <= 0) {
        fail(
          `key "${e.key}" is not after the key before it (keys must be sorted, unique)`,
          e.offset,
        );
      }
      lastKey = e.keyBytes;
      entries.push(e);
    }
    if (lastKey !== undefined && data.length > 0 && compareBytes(lastKey, ix.keyBytes) > 0) {
      fail(
        `data block's last key "${utf8.decode(lastKey)}" is after its index key "${ix.key}"`,
        ix.offset,
      );
    }
  }
  return entries;
}

/** The entries of one block (`base` is the block's offset in the file, for messages). */
function parseBlock(
  block: Uint8Array,
  base: number,
  file: string,
  what: string,
): TableEntry[] {
  const context = `${what} block: `;
  const fail = (msg: string, at: number): never =>
    new Cursor(block, 0, 0, file, base, context).fail(msg, at);
  if (block.length < 4) fail(`block of ${block.length} bytes has no restart count`, 0);
  const numRestarts = u32(block, block.length - 4);
  if (numRestarts > (block.length - 4) / 4) {
    fail(`restart count ${numRestarts} does not fit in a block of ${block.length} bytes`, 0);
  }
  const restartsAt = block.length - 4 * (1 + numRestarts);
  const entries: TableEntry[] = [];
  const restartable = new Set<number>();
  const c = new Cursor(block, 0, restartsAt, file, base, context);
  let prev = new Uint8Array(0);
  while (c.pos < restartsAt) {
    const start = c.pos;
    const shared = c.varint32("shared key length");
    const unshared = c.varint32("key length");
    const valueLength = c.varint32("value length");
    if (shared > prev.length) {
      fail(`entry shares ${shared} key bytes but the previous key has ${prev.length}`, start);
    }
    if (unshared + valueLength > restartsAt - c.pos) {
      fail(
        `entry of ${unshared} key and ${valueLength} value bytes runs past the block's ` +
          `entries (${restartsAt - c.pos} bytes left)`,
        start,
      );
    }
    if (shared === 0) restartable.add(start);
    const key = new Uint8Array(shared + unshared);
    key.set(prev.subarray(0, shared));
    key.set(block.subarray(c.pos, c.pos + unshared), shared);
    c.pos += unshared;
    entries.push({
      keyBytes: key,
      key: utf8.decode(key),
      value: block.subarray(c.pos, c.pos + valueLength),
      offset: base + c.pos,
    });
    c.pos += valueLength;
    prev = key;
  }
  for (let i = 0; i < numRestarts; i++) {
    const r = u32(block, restartsAt + 4 * i);
    const emptyBlock = entries.length === 0 && r === 0;
    if (!emptyBlock && !restartable.has(r)) {
      fail(`restart point ${i} (${r}) is not the start of an unshared entry`, restartsAt + 4 * i);
    }
  }
  return entries;
}

function hex(v: number): string {
  return "0x" + v.toString(16).padStart(8, "0");
}
