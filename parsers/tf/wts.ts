/**
 * TensorRT-style weight dumps, the files TensorRT's samples load with `loadWeights()` and
 * NVIDIA's `dumpTFWts.py` writes from a TensorFlow checkpoint.
 *
 * v1 (`.wts`, text):
 *
 *     <count>
 *     <name> <type> <n> <hex> <hex> ... <hex>       (once per buffer)
 *
 * `type` is TensorRT's DataType code (0 = float32, 1 = float16) and each value is the hex bit
 * pattern of one element, without `0x` (`3f800000` = 1.0). Readers use C++ `>> std::hex`, so any
 * whitespace separates tokens.
 *
 * v2 (`.wts2`, a text header per buffer followed by raw bytes):
 *
 *     <count>\n
 *     <name> <type> (d0, d1, ...)␠<n · sizeof(type) little-endian bytes>\n   (once per buffer)
 *
 * The shape is Python tuple syntax (`(256,)`, `()` for a scalar). Payload bytes may contain
 * newlines or parentheses, so the reader seeks by size and never scans the payload.
 *
 * Every malformed file is refused with a `KilnError` (PARSE_ERROR) naming the file, the byte
 * offset and, once it is known, the buffer. Counts read from the file are checked against the
 * bytes that remain before anything is allocated from them.
 */
import { float16BitsToFloat32 } from "../../dsl/ir/dtype.ts";
import { KilnError } from "../../errors.ts";

/** One buffer of a weight dump. float16 values travel as their IEEE-754 bits. */
export type WtsTensor =
  | { dtype: "float32"; dims?: number[]; values: Float32Array }
  | { dtype: "float16"; dims?: number[]; values: Uint16Array };

/** What the writers take: tensors by name; a bare Float32Array is a float32 buffer. */
export type WtsTensors =
  | ReadonlyMap<string, WtsTensor | Float32Array>
  | Readonly<Record<string, WtsTensor | Float32Array>>;

/** TensorRT's nvinfer1::DataType codes that a dump may hold. */
const TYPE_OF_CODE: Record<number, WtsTensor["dtype"]> = { 0: "float32", 1: "float16" };
const CODE_OF_TYPE = { float32: 0, float16: 1 } as const;
const BYTES_OF_TYPE = { float32: 4, float16: 2 } as const;

/** A token that is not whitespace takes at least this many bytes per buffer ("a 0 0"). */
const MIN_BUFFER_BYTES = 5;
/** Decimal fields longer than this cannot be a real count or dimension (2^53 has 16 digits). */
const MAX_DECIMAL_DIGITS = 15;

// ---------------------------------------------------------------------------------------------
// Reading

/** Reads a `.wts` or `.wts2` file (the format is told from the content, not the name). */
export async function readWts(source: string | URL | Uint8Array): Promise<Map<string, WtsTensor>> {
  if (source instanceof Uint8Array) return parseWts(source);
  const file = source instanceof URL ? source.href : source;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(source);
  } catch (e) {
    throw new KilnError("IO_ERROR", `could not read weights ${file}: ${(e as Error).message}`, {
      file,
      cause: e,
    });
  }
  return parseWts(bytes, file);
}

/**
 * Parses the bytes of a `.wts` or `.wts2` file. A string is taken as the text of a v1 file
 * (binary v2 payloads do not survive a round trip through a JS string: pass bytes).
 */
export function parseWts(
  data: Uint8Array | string,
  fileName = "<wts bytes>",
): Map<string, WtsTensor> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  if (!(bytes instanceof Uint8Array)) {
    throw new KilnError("INVALID_ARGUMENT", "parseWts expects a Uint8Array or a string", {
      file: fileName,
    });
  }
  const r = new Reader(bytes, fileName);
  const count = r.decimal("the buffer count");
  if (count * MIN_BUFFER_BYTES > r.remaining) {
    r.fail(`the header says ${count} buffers but only ${r.remaining} bytes follow`, 0);
  }
  const out = new Map<string, WtsTensor>();
  let version: 1 | 2 | undefined;
  for (let i = 0; i < count; i++) {
    r.skipSpace();
    const at = r.pos;
    if (r.atEnd) r.fail(`the file ends after ${i} of ${count} buffers`);
    const name = r.name();
    if (out.has(name)) r.fail(`duplicate buffer name "${name}"`, at, name);
    r.skipSpace();
    const typeAt = r.pos;
    const code = r.decimal("the buffer type", name);
    const dtype = TYPE_OF_CODE[code];
    if (dtype === undefined) {
      r.fail(`unknown buffer type ${code} (0 = float32 and 1 = float16 are read)`, typeAt, name);
    }
    r.skipSpace();
    // v2 writes the shape where v1 writes the element count.
    const isV2 = r.peek() === OPEN_PAREN;
    version ??= isV2 ? 2 : 1;
    if (isV2 !== (version === 2)) {
      r.fail(
        version === 2
          ? 'expected the shape "(d0, d1, ...)" (the file began as v2)'
          : 'found a shape "(...)" where v1 has the element count (the file began as v1)',
        r.pos,
        name,
      );
    }
    out.set(
      name,
      isV2 ? readV2Buffer(r, name, dtype, i === count - 1) : readV1Buffer(r, name, dtype),
    );
  }
  r.skipSpace();
  if (!r.atEnd) {
    r.fail(`unexpected bytes after the last of the ${count} buffers the header announces`);
  }
  return out;
}

/** v1: `<n> <hex> ... <hex>` after the name and type. */
function readV1Buffer(r: Reader, name: string, dtype: WtsTensor["dtype"]): WtsTensor {
  r.skipSpace();
  const countAt = r.pos;
  const count = r.decimal("the element count", name);
  // Each value takes at least two bytes: a separator and one hex digit.
  if (count * 2 > r.remaining) {
    r.fail(
      `the element count ${count} needs at least ${count * 2} more bytes; ${r.remaining} remain`,
      countAt,
      name,
    );
  }
  if (dtype === "float32") {
    const bits = new Uint32Array(count);
    readHex(r, bits, 0xffffffff, name);
    return { dtype, values: new Float32Array(bits.buffer) };
  }
  const bits = new Uint16Array(count);
  readHex(r, bits, 0xffff, name);
  return { dtype, values: bits };
}

/** Reads `out.length` whitespace-separated hex bit patterns (the hot loop of a v1 file). */
function readHex(r: Reader, out: Uint32Array | Uint16Array, max: number, name: string): void {
  const b = r.bytes;
  const n = out.length;
  let p = r.pos;
  for (let i = 0; i < n; i++) {
    while (p < b.length && isSpace(b[p])) p++;
    if (p >= b.length) r.fail(`the file ends after ${i} of ${n} values`, p, name);
    const start = p;
    let v = 0;
    for (; p < b.length && !isSpace(b[p]); p++) {
      const d = HEX_DIGIT[b[p]];
      if (d < 0) {
        r.fail(
          `value ${i} of ${n} is not hexadecimal: ${r.preview(start)}` +
            (i > 0 ? " (fewer values than the count says?)" : ""),
          start,
          name,
        );
      }
      v = v * 16 + d;
      if (v > max) {
        r.fail(
          `value ${i} of ${n} (${r.preview(start)}) does not fit in ${
            max === 0xffff ? 16 : 32
          } bits`,
          start,
          name,
        );
      }
    }
    out[i] = v;
  }
  r.pos = p;
}

/** v2: `(d0, d1, ...)`, one space, the raw little-endian payload, then a newline. */
function readV2Buffer(
  r: Reader,
  name: string,
  dtype: WtsTensor["dtype"],
  last: boolean,
): WtsTensor {
  const dims = readShape(r, name);
  if (r.peek() !== SPACE) {
    r.fail("expected exactly one space between the shape and the data", r.pos, name);
  }
  r.pos++;
  const size = BYTES_OF_TYPE[dtype];
  // The product is checked as it grows, so a bogus shape neither overflows nor allocates.
  let count = dims.includes(0) ? 0 : 1;
  let exact = true;
  for (let i = 0; i < dims.length; i++) {
    count *= dims[i];
    if (count * size > r.remaining) {
      exact = i === dims.length - 1;
      break;
    }
  }
  const bytes = count * size;
  if (!exact || bytes > r.remaining) {
    r.fail(
      `the shape ${formatShape(dims)} needs ${exact ? "" : "more than "}${
        exact ? bytes : r.remaining
      } bytes of data; only ${r.remaining} remain (truncated file?)`,
      r.pos,
      name,
    );
  }
  const view = new DataView(r.bytes.buffer, r.bytes.byteOffset + r.pos, bytes);
  let tensor: WtsTensor;
  if (dtype === "float32") {
    // Copied as bits so that NaN payloads survive exactly.
    const bits = new Uint32Array(count);
    for (let i = 0; i < count; i++) bits[i] = view.getUint32(4 * i, true);
    tensor = { dtype, dims, values: new Float32Array(bits.buffer) };
  } else {
    const bits = new Uint16Array(count);
    for (let i = 0; i < count; i++) bits[i] = view.getUint16(2 * i, true);
    tensor = { dtype, dims, values: bits };
  }
  r.pos += bytes;
  // The newline after the payload is the only check that the shape matched the data.
  if (r.atEnd && last) return tensor;
  if (r.peek() !== NEWLINE) {
    r.fail(
      `expected a newline after the ${bytes} data bytes of shape ${formatShape(dims)}; ` +
        "the shape does not match the data",
      r.pos,
      name,
    );
  }
  r.pos++;
  return tensor;
}

/** Python's tuple syntax, as dumpTFWts.py writes shapes: `()`, `(256,)`, `(784, 256)`. */
function formatShape(dims: readonly number[]): string {
  return dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(", ")})`;
}

/** `(d0, d1, ...)` in Python tuple syntax: `()`, `(256,)`, `(784, 256)`; also `(256)`. */
function readShape(r: Reader, name: string): number[] {
  r.pos++; // "("
  const dims: number[] = [];
  for (;;) {
    r.skipSpace();
    if (r.peek() === CLOSE_PAREN) break; // "()" or a trailing comma
    dims.push(r.digits("a dimension", name));
    r.skipSpace();
    const c = r.peek();
    if (c === COMMA) {
      r.pos++;
      continue;
    }
    if (c === CLOSE_PAREN) break;
    r.fail(`expected "," or ")" in the shape, found ${r.preview(r.pos)}`, r.pos, name);
  }
  r.pos++; // ")"
  return dims;
}

const SPACE = 0x20, NEWLINE = 0x0a, COMMA = 0x2c, OPEN_PAREN = 0x28, CLOSE_PAREN = 0x29;

/** C's isspace: space, \t, \n, \v, \f, \r. */
function isSpace(c: number): boolean {
  return c === SPACE || (c >= 0x09 && c <= 0x0d);
}

const HEX_DIGIT = (() => {
  const t = new Int8Array(256).fill(-1);
  for (let i = 0; i < 10; i++) t[0x30 + i] = i;
  for (let i = 0; i < 6; i++) t[0x41 + i] = t[0x61 + i] = 10 + i;
  return t;
})();

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A position in the file and the errors that name it. */
class Reader {
  pos = 0;
  constructor(readonly bytes: Uint8Array, readonly file: string) {}

  get remaining(): number {
    return this.bytes.length - this.pos;
  }
  get atEnd(): boolean {
    return this.pos >= this.bytes.length;
  }
  /** The byte at the cursor, or -1 at the end. */
  peek(): number {
    return this.pos < this.bytes.length ? this.bytes[this.pos] : -1;
  }

  skipSpace(): void {
    while (this.pos < this.bytes.length && isSpace(this.bytes[this.pos])) this.pos++;
  }

  /** The next whitespace-delimited token's [start, end). */
  token(what: string, buffer?: string): [number, number] {
    this.skipSpace();
    if (this.atEnd) this.fail(`the file ends where ${what} was expected`, this.pos, buffer);
    const start = this.pos;
    while (this.pos < this.bytes.length && !isSpace(this.bytes[this.pos])) this.pos++;
    return [start, this.pos];
  }

  name(): string {
    const [start, end] = this.token("a buffer name");
    try {
      return utf8.decode(this.bytes.subarray(start, end));
    } catch {
      this.fail("the buffer name is not valid UTF-8", start);
    }
  }

  /** A whole whitespace-delimited token that must be a non-negative decimal integer. */
  decimal(what: string, buffer?: string): number {
    const [start, end] = this.token(what, buffer);
    this.pos = start;
    const v = this.digits(what, buffer);
    if (this.pos !== end) {
      this.fail(
        `expected ${what} (a decimal integer), found ${this.preview(start)}`,
        start,
        buffer,
      );
    }
    return v;
  }

  /** A run of decimal digits at the cursor. */
  digits(what: string, buffer?: string): number {
    const start = this.pos;
    let v = 0;
    while (this.pos < this.bytes.length) {
      const c = this.bytes[this.pos];
      if (c < 0x30 || c > 0x39) break;
      v = v * 10 + (c - 0x30);
      this.pos++;
    }
    const n = this.pos - start;
    if (n === 0) {
      this.fail(
        `expected ${what} (a decimal integer), found ${this.preview(start)}`,
        start,
        buffer,
      );
    }
    if (n > MAX_DECIMAL_DIGITS) this.fail(`${what} is too large`, start, buffer);
    return v;
  }

  /** Up to 16 bytes from `start` to the next whitespace, quoted and escaped for a message. */
  preview(start: number): string {
    if (start >= this.bytes.length) return "the end of the file";
    let end = start;
    while (end < this.bytes.length && end - start < 16 && !isSpace(this.bytes[end])) end++;
    if (end === start) end = start + 1;
    const text = String.fromCharCode(...this.bytes.subarray(start, end));
    return JSON.stringify(text) + (end - start === 16 ? "..." : "");
  }

  fail(what: string, at = this.pos, buffer?: string): never {
    const where = buffer === undefined ? "" : `, buffer "${buffer}"`;
    throw new KilnError("PARSE_ERROR", `${this.file}: ${what} (at byte ${at}${where})`, {
      file: this.file,
      offset: at,
      tensor: buffer,
    });
  }
}

/** A buffer's values as float32 (float16 bits widened exactly; float32 values as they are). */
export function float32Values(tensor: WtsTensor): Float32Array {
  if (tensor.dtype === "float32") return tensor.values;
  const out = new Float32Array(tensor.values.length);
  for (let i = 0; i < out.length; i++) out[i] = float16BitsToFloat32(tensor.values[i]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * The v1 text of `tensors`, exactly as dumpTFWts.py writes it: the count on its own line, then
 * per buffer `name type n ` and each value's hex bits without leading zeros, each followed by a
 * space, then a newline. (dumpTFWts.py always writes type 0; float16 buffers here get 1, as
 * TensorRT's readers expect.)
 */
export function writeWts(tensors: WtsTensors): string {
  const list = checkedTensors(tensors);
  const parts: string[] = [`${list.length}\n`];
  for (const [name, t] of list) {
    const bits = t.dtype === "float32"
      ? new Uint32Array(t.values.buffer, t.values.byteOffset, t.values.length)
      : t.values;
    const hex = new Array<string>(bits.length);
    for (let i = 0; i < bits.length; i++) hex[i] = bits[i].toString(16) + " ";
    parts.push(`${name} ${CODE_OF_TYPE[t.dtype]} ${bits.length} `, hex.join(""), "\n");
  }
  return parts.join("");
}

/** The v2 bytes of `tensors`; a tensor without dims is written as 1-D. */
export function writeWts2(tensors: WtsTensors): Uint8Array {
  const list = checkedTensors(tensors);
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [enc.encode(`${list.length}\n`)];
  for (const [name, t] of list) {
    const dims = t.dims ?? [t.values.length];
    chunks.push(enc.encode(`${name} ${CODE_OF_TYPE[t.dtype]} ${formatShape(dims)} `));
    const payload = new Uint8Array(t.values.length * BYTES_OF_TYPE[t.dtype]);
    const view = new DataView(payload.buffer);
    if (t.dtype === "float32") {
      const bits = new Uint32Array(t.values.buffer, t.values.byteOffset, t.values.length);
      for (let i = 0; i < bits.length; i++) view.setUint32(4 * i, bits[i], true);
    } else {
      for (let i = 0; i < t.values.length; i++) view.setUint16(2 * i, t.values[i], true);
    }
    chunks.push(payload, enc.encode("\n"));
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export interface SaveWtsOptions {
  /** "wts" (v1 text) or "wts2" (v2); by default from the file name (`.wts2` → v2). */
  format?: "wts" | "wts2";
}

/** Writes a weight dump atomically (a temporary file in the same folder, then a rename). */
export async function saveWts(
  path: string,
  tensors: WtsTensors,
  options: SaveWtsOptions = {},
): Promise<void> {
  const format = options.format ?? (path.endsWith(".wts2") ? "wts2" : "wts");
  if (format !== "wts" && format !== "wts2") {
    throw new KilnError("INVALID_ARGUMENT", `format must be "wts" or "wts2", got ${format}`);
  }
  const bytes = format === "wts2"
    ? writeWts2(tensors)
    : new TextEncoder().encode(writeWts(tensors));
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new KilnError("IO_ERROR", `could not write ${path}: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
}

/** The writers' input as a checked list: names a reader can read back, arrays that fit. */
function checkedTensors(tensors: WtsTensors): [string, WtsTensor][] {
  if (tensors === null || typeof tensors !== "object") {
    throw new KilnError("INVALID_ARGUMENT", "expected tensors as a Map or an object by name");
  }
  const entries = tensors instanceof Map
    ? [...(tensors as ReadonlyMap<string, unknown>).entries()]
    : Object.entries(tensors);
  return entries.map(([name, value]) => {
    const bad = (why: string): never => {
      throw new KilnError("INVALID_ARGUMENT", `weights "${name}": ${why}`, { tensor: name });
    };
    if (typeof name !== "string" || name.length === 0 || /\s/.test(name)) {
      bad("a buffer name must be a non-empty string without whitespace");
    }
    if (value instanceof Float32Array) return [name, { dtype: "float32", values: value }];
    const t = value as Partial<WtsTensor> | null;
    if (t === null || typeof t !== "object") {
      bad("expected a Float32Array or {dtype, dims?, values}");
    }
    const ok = (t!.dtype === "float32" && t!.values instanceof Float32Array) ||
      (t!.dtype === "float16" && t!.values instanceof Uint16Array);
    if (!ok) bad("expected float32 values in a Float32Array or float16 bits in a Uint16Array");
    const tensor = t as WtsTensor;
    if (tensor.dims !== undefined) {
      const dims = tensor.dims;
      if (!Array.isArray(dims) || !dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        bad("dims must be non-negative integers");
      }
      const n = dims.reduce((a, d) => a * d, 1);
      if (n !== tensor.values.length) {
        bad(`dims (${dims.join(", ")}) hold ${n} elements but ${tensor.values.length} were given`);
      }
    }
    return [name, tensor];
  });
}
