import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import {
  float32Values,
  parseWts,
  readWts,
  saveWts,
  writeWts,
  writeWts2,
  type WtsTensor,
} from "../../../parsers/tf/wts.ts";
import { rng } from "../../_util.ts";

const SHARED = new URL("../../../../shared/data/wts/", import.meta.url);
const SHIPPED = new URL("../../../data/wts/", import.meta.url);

function exists(url: URL): boolean {
  try {
    Deno.statSync(url);
    return true;
  } catch {
    return false;
  }
}

/** A float's value from its 32 bits, through a DataView (independent of the parser). */
function bitsToFloat(bits: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, bits);
  return dv.getFloat32(0);
}

/** The reference v1 reader: split on whitespace, read each hex token with parseInt. */
function referenceV1(text: string): { name: string; type: number; values: number[] }[] {
  const tok = text.split(/\s+/).filter((s) => s !== "");
  let i = 0;
  const count = Number(tok[i++]);
  const out = [];
  for (let b = 0; b < count; b++) {
    const name = tok[i++], type = Number(tok[i++]), n = Number(tok[i++]);
    const values = tok.slice(i, i + n).map((h) => bitsToFloat(parseInt(h, 16)));
    i += n;
    out.push({ name, type, values });
  }
  assert.equal(i, tok.length, "the reference consumed every token");
  return out;
}

/** The reference v2 reader: a regex over each header, then a DataView over the payload. */
function referenceV2(bytes: Uint8Array): { name: string; dims: number[]; values: number[] }[] {
  const latin1 = new TextDecoder("latin1");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = bytes.indexOf(0x0a) + 1;
  const count = Number(latin1.decode(bytes.subarray(0, p)));
  const out = [];
  for (let b = 0; b < count; b++) {
    const head = latin1.decode(bytes.subarray(p, p + 200));
    const m = /^(\S+) 0 \(([\d, ]*)\) /.exec(head)!;
    assert.ok(m, `header ${b} matches`);
    const dims = m[2].split(",").map((s) => s.trim()).filter((s) => s !== "").map(Number);
    p += m[0].length;
    const n = dims.reduce((a, d) => a * d, 1);
    const values = Array.from({ length: n }, (_, i) => dv.getFloat32(p + 4 * i, true));
    p += 4 * n;
    assert.equal(bytes[p], 0x0a, "a newline follows each payload");
    p++;
    out.push({ name: m[1], dims, values });
  }
  assert.equal(p, bytes.length);
  return out;
}

function assertSameValues(actual: Float32Array, expected: number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      assert.fail(`${what}[${i}] is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

function expectParseError(
  fn: () => unknown,
  check: { offset?: number; tensor?: string; message: RegExp },
  file = "bad.wts",
): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof KilnError, `a KilnError, got ${e}`);
    assert.equal(e.code, "PARSE_ERROR");
    assert.equal(e.file, file);
    assert.match(e.message, check.message);
    assert.ok(e.message.includes(file), "the message names the file");
    if (check.offset !== undefined) assert.equal(e.offset, check.offset, e.message);
    if (check.tensor !== undefined) assert.equal(e.tensor, check.tensor, e.message);
    return true;
  });
}

Deno.test("readWts reads sampleMNISTAPI's mnistapi.wts (v1) like an independent reader", {
  ignore: !exists(SHARED),
}, async () => {
  const url = new URL("mnistapi.wts", SHARED);
  const ref = referenceV1(await Deno.readTextFile(url));
  const got = await readWts(url);
  assert.deepEqual(
    [...got.keys()],
    [
      "conv1filter",
      "conv1bias",
      "conv2filter",
      "conv2bias",
      "ip1filter",
      "ip1bias",
      "ip2filter",
      "ip2bias",
    ],
  );
  assert.deepEqual(
    [...got.values()].map((t) => t.values.length),
    [500, 20, 25000, 50, 400000, 500, 5000, 10],
  );
  for (const r of ref) {
    const t = got.get(r.name)!;
    assert.equal(t.dtype, "float32");
    assert.equal(t.dims, undefined, "v1 carries no dims");
    assertSameValues(t.values as Float32Array, r.values, r.name);
  }
  // Spelled out once: the file's first value is 3e96242e.
  assert.equal(got.get("conv1filter")!.values[0], bitsToFloat(0x3e96242e));
});

Deno.test("readWts reads the shipped mnist8.wts (v1) like an independent reader", async () => {
  const url = new URL("mnist8.wts", SHIPPED);
  const ref = referenceV1(await Deno.readTextFile(url));
  const got = await readWts(url);
  assert.deepEqual(
    [...got].map(([k, v]) => [k, v.values.length]),
    [
      ["conv1filter", 200],
      ["conv1bias", 8],
      ["conv2filter", 3200],
      ["conv2bias", 16],
      ["fcweights", 2560],
      ["fcbias", 10],
    ],
  );
  for (const r of ref) assertSameValues(got.get(r.name)!.values as Float32Array, r.values, r.name);
  assert.equal(got.get("conv1filter")!.values[0], bitsToFloat(0xbc11e916));
});

Deno.test("readWts reads sampleMLP.wts2 (v2) like an independent reader", {
  ignore: !exists(SHARED),
}, async () => {
  const url = new URL("sampleMLP.wts2", SHARED);
  const bytes = await Deno.readFile(url);
  const ref = referenceV2(bytes);
  const got = await readWts(url);
  assert.deepEqual(
    [...got].map(([k, v]) => [k, v.dims]),
    [
      ["hiddenWeights0", [784, 256]],
      ["hiddenWeights1", [256, 256]],
      ["outputWeights", [256, 10]],
      ["hiddenBias0", [256]],
      ["hiddenBias1", [256]],
      ["outputBias", [10]],
    ],
  );
  for (const r of ref) {
    const t = got.get(r.name)!;
    assert.deepEqual(t.dims, r.dims);
    assertSameValues(t.values as Float32Array, r.values, r.name);
  }
});

/** Tensors with awkward values: signed zeros, infinities, subnormals, NaN payloads. */
function awkwardTensors(): Map<string, WtsTensor> {
  const r = rng(7);
  const f = new Float32Array(37);
  for (let i = 0; i < f.length; i++) f[i] = (r() - 0.5) * 10 ** Math.floor(r() * 10 - 5);
  const bits = new Uint32Array(f.buffer);
  bits[0] = 0x80000000; // -0
  bits[1] = 0x7f800000; // +inf
  bits[2] = 0x00000001; // smallest subnormal
  bits[3] = 0x7fc01234; // NaN with a payload
  bits[4] = 0; // +0, written as "0"
  const h = new Uint16Array(12);
  for (let i = 0; i < h.length; i++) h[i] = Math.floor(r() * 0x10000);
  h[0] = 0x3c00; // 1.0
  h[1] = 0x8000; // -0
  return new Map<string, WtsTensor>([
    ["conv/kernel", { dtype: "float32", dims: [37], values: f }],
    ["half_w", { dtype: "float16", dims: [3, 4], values: h }],
    ["scalar", { dtype: "float32", dims: [], values: new Float32Array([2.5]) }],
    ["empty", { dtype: "float32", dims: [0, 3], values: new Float32Array(0) }],
  ]);
}

function assertSameTensors(
  got: Map<string, WtsTensor>,
  want: Map<string, WtsTensor>,
  withDims: boolean,
): void {
  assert.deepEqual([...got.keys()], [...want.keys()]);
  for (const [name, w] of want) {
    const g = got.get(name)!;
    assert.equal(g.dtype, w.dtype, name);
    if (withDims) assert.deepEqual(g.dims, w.dims, name);
    const bits = (t: WtsTensor) =>
      t.dtype === "float32"
        ? [...new Uint32Array(t.values.buffer, t.values.byteOffset, t.values.length)]
        : [...t.values];
    assert.deepEqual(bits(g), bits(w), `${name}: bit patterns`);
  }
}

Deno.test("writeWts → parseWts round-trips float32 and float16 bit patterns (v1)", () => {
  const t = awkwardTensors();
  const back = parseWts(writeWts(t), "round.wts");
  assertSameTensors(back, t, false);
  assert.equal(back.get("half_w")!.dims, undefined);
});

Deno.test("writeWts2 → parseWts round-trips bits and dims, scalars and empty tensors (v2)", () => {
  const t = awkwardTensors();
  assertSameTensors(parseWts(writeWts2(t), "round.wts2"), t, true);
});

Deno.test("writeWts writes dumpTFWts.py's exact layout", () => {
  const text = writeWts(
    new Map<string, WtsTensor | Float32Array>([
      ["a", new Float32Array([1, 0, -2])],
      ["h", { dtype: "float16", values: new Uint16Array([0x3c00, 0x0001]) }],
    ]),
  );
  assert.equal(text, "2\na 0 3 3f800000 0 c0000000 \nh 1 2 3c00 1 \n");
});

Deno.test("writeWts2 writes the header, one space, little-endian bytes and a newline", () => {
  const bytes = writeWts2({
    w: { dtype: "float32", dims: [1, 2], values: new Float32Array([1, -2]) },
    b: new Float32Array([0.5]),
  });
  const expected = [
    ..."2\nw 0 (1, 2) ".split("").map((c) => c.charCodeAt(0)),
    0x00,
    0x00,
    0x80,
    0x3f,
    0x00,
    0x00,
    0x00,
    0xc0,
    0x0a,
    ..."b 0 (1,) ".split("").map((c) => c.charCodeAt(0)),
    0x00,
    0x00,
    0x00,
    0x3f,
    0x0a,
  ];
  assert.deepEqual([...bytes], expected);
});

Deno.test("parseWts v2 seeks by size: payloads holding newlines and parentheses", () => {
  // 0x0a28290a = "\n()\n" as little-endian bytes; 0x20 is the header's space byte.
  const bits = new Uint32Array([0x0a29280a, 0x20202020, 0x28282828, 0x0a0a0a0a]);
  const values = new Float32Array(bits.buffer);
  const file = writeWts2({ "x(1)": { dtype: "float32", dims: [2, 2], values } });
  const back = parseWts(file, "p.wts2").get("x(1)")!;
  assert.deepEqual([...new Uint32Array(back.values.buffer)], [...bits]);
});

Deno.test("parseWts accepts any whitespace, upper-case hex and leading zeros in v1", () => {
  const m = parseWts("2\r\n a\t0\n2\n\n3F800000   00000000c0000000\r\nb 1 1 3c00", "ws.wts");
  assert.deepEqual([...m.get("a")!.values], [1, -2]);
  assert.deepEqual([...m.get("b")!.values], [0x3c00]);
  assert.deepEqual([...float32Values(m.get("b")!)], [1]);
});

Deno.test("float32Values widens float16 bits exactly", () => {
  const t: WtsTensor = {
    dtype: "float16",
    values: new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7bff, 0x8000, 0x7c00, 0x3555]),
  };
  // Direct values: 1, -2, 2^-24, 65504, -0, +inf, (1 + 0x155/1024) * 2^-2.
  const want = [1, -2, 2 ** -24, 65504, -0, Infinity, (1 + 0x155 / 1024) / 4];
  assertSameValues(float32Values(t), want, "widened");
});

Deno.test("parseWts refuses malformed files with the file, byte offset and buffer", () => {
  const f = "bad.wts";
  expectParseError(() => parseWts("x\n", f), { offset: 0, message: /buffer count/ }, f);
  expectParseError(() => parseWts("", f), { offset: 0, message: /buffer count/ }, f);
  // 1000 buffers cannot fit in 10 bytes.
  expectParseError(() => parseWts("1000\na 0 1 0\n", f), {
    offset: 0,
    message: /1000 buffers/,
  }, f);
  // A count no file could hold is refused before anything is allocated.
  expectParseError(() => parseWts("1\na 0 999999999999999 0\n", f), {
    offset: 6,
    tensor: "a",
    message: /element count 999999999999999/,
  }, f);
  expectParseError(() => parseWts("1\na 0 2 3f80000g 0\n", f), {
    offset: 8,
    tensor: "a",
    message: /not hexadecimal/,
  }, f);
  expectParseError(() => parseWts("1\na 0 1 123456789\n", f), {
    offset: 8,
    message: /32 bits/,
  }, f);
  expectParseError(() => parseWts("1\na 1 1 10000\n", f), { offset: 8, message: /16 bits/ }, f);
  expectParseError(() => parseWts("1\na 0 3 1 2   ", f), {
    offset: 14,
    tensor: "a",
    message: /ends after 2 of 3 values/,
  }, f);
  expectParseError(() => parseWts("1\na 7 1 0\n", f), {
    offset: 4,
    tensor: "a",
    message: /unknown buffer type 7/,
  }, f);
  expectParseError(() => parseWts("2\na 0 1 0\na 0 1 0\n", f), {
    offset: 10,
    tensor: "a",
    message: /duplicate buffer name "a"/,
  }, f);
  // One value too many: the extra value is where the next name should be... and the end.
  expectParseError(
    () => parseWts("1\na 0 1 0 0\n", f),
    { offset: 10, message: /after the last/ },
    f,
  );
  expectParseError(() => parseWts("2\na 0 1 0\n\n\n", f), {
    offset: 12,
    message: /ends after 1 of 2 buffers/,
  }, f);
  expectParseError(() => parseWts(new Uint8Array([0x31, 0x0a, 0xff, 0x20, 0x30, 0x20, 0x30]), f), {
    offset: 2,
    message: /UTF-8/,
  }, f);
});

Deno.test("parseWts refuses malformed v2 files with the file, byte offset and buffer", () => {
  const f = "bad.wts2";
  const good = writeWts2({ w: { dtype: "float32", dims: [2], values: new Float32Array([1, 2]) } });
  // "1\nw 0 (2,) " is 11 bytes, then 8 payload bytes and "\n".
  expectParseError(() => parseWts(good.subarray(0, 15), f), {
    offset: 11,
    tensor: "w",
    message: /needs 8 bytes of data; only 4 remain/,
  }, f);
  const enc = (s: string) => new TextEncoder().encode(s);
  const cat = (...parts: Uint8Array[]) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) out.set(p, (at += p.length) - p.length);
    return out;
  };
  const payload = good.subarray(11, 19);
  // The shape says 1 element, the data holds 2: the newline is not where it should be.
  expectParseError(() => parseWts(cat(enc("1\nw 0 (1,) "), payload, enc("\n")), f), {
    offset: 15,
    tensor: "w",
    message: /shape does not match the data/,
  }, f);
  expectParseError(() => parseWts(cat(enc("1\nw 0 (2,)  "), payload, enc("\n")), f), {
    offset: 19,
    tensor: "w",
    message: /newline after the 8 data bytes/,
  }, f);
  expectParseError(() => parseWts(enc("1\nw 0 (2;) xxxxxxxx\n"), f), {
    offset: 8,
    message: /expected "," or "\)"/,
  }, f);
  expectParseError(() => parseWts(enc("1\nw 0 (,) \n"), f), { offset: 7, message: /dimension/ }, f);
  expectParseError(() => parseWts(enc("1\nw 0 (100000000, 100000000) \n"), f), {
    offset: 29,
    tensor: "w",
    message: /needs more than 1 bytes of data; only 1 remain/,
  }, f);
  expectParseError(() => parseWts(enc("1\nw 0 (2"), f), { message: /expected "," or "\)"/ }, f);
  // A file that starts as v2 stays v2.
  expectParseError(
    () => parseWts(cat(enc("2\nw 0 (2,) "), payload, enc("\nb 0 1 0\n")), f),
    { tensor: "b", message: /began as v2/ },
    f,
  );
});

Deno.test("saveWts writes atomically, in the format the name or the option asks for", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const t = awkwardTensors();
    await saveWts(`${dir}/w.wts2`, t);
    await saveWts(`${dir}/w.wts`, t);
    await saveWts(`${dir}/w.bin`, t, { format: "wts2" });
    assertSameTensors(await readWts(`${dir}/w.wts2`), t, true);
    assertSameTensors(await readWts(`${dir}/w.bin`), t, true);
    const text = await Deno.readTextFile(`${dir}/w.wts`);
    assert.ok(text.startsWith("4\nconv/kernel 0 37 80000000 7f800000 1 7fc01234 0 "), text);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["w.bin", "w.wts", "w.wts2"], "no temporary file is left");
    await assert.rejects(
      () => saveWts(`${dir}/missing/w.wts`, t),
      (e: unknown) => e instanceof KilnError && e.code === "IO_ERROR",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeWts refuses names and arrays a reader could not read back", () => {
  const refuses = (tensors: Parameters<typeof writeWts>[0], re: RegExp) =>
    assert.throws(
      () => writeWts(tensors),
      (e: unknown) => e instanceof KilnError && e.code === "INVALID_ARGUMENT" && re.test(e.message),
    );
  refuses({ "a b": new Float32Array(1) }, /without whitespace/);
  refuses({ "": new Float32Array(1) }, /non-empty/);
  refuses({ a: { dtype: "float32", dims: [2, 2], values: new Float32Array(3) } }, /4 elements/);
  refuses(
    { a: { dtype: "float16", values: new Float32Array(1) } as unknown as WtsTensor },
    /Uint16Array/,
  );
});

Deno.test("readWts reports a missing file as IO_ERROR naming it", async () => {
  await assert.rejects(
    () => readWts("/nonexistent/kiln.wts"),
    (e: unknown) =>
      e instanceof KilnError && e.code === "IO_ERROR" && e.file === "/nonexistent/kiln.wts",
  );
});
