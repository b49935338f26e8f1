/**
 * Constant tensors known at import time (initializers, Constant nodes and what is folded from
 * them: shapes, ConstantOfShape, Cast, Gather of a shape...), held as host arrays, and the host
 * arithmetic the importer folds them with.
 *
 * Integer constants computed from shapes may hold the symbolic batch: `Shape` of a [N, 3, 8]
 * tensor is [N, 3, 8]. The batch is stored as NaN (never an integer value) and survives only
 * operations that move elements (Gather, Slice, Concat, Unsqueeze, Reshape, Cast...);
 * arithmetic on it is refused, since N·3 has no representation.
 */
import { KilnError } from "../../errors.ts";
import { BOOL, dataTypeName, FLOAT, FLOAT16, INT64, ONNX_DATA_TYPES } from "./tensor.ts";
import { float16BitsToFloat32, float32ToFloat16Bits } from "../../dsl/ir/dtype.ts";

export class ConstTensor {
  constructor(
    /** TensorProto.DataType. */
    readonly dataType: number,
    readonly dims: readonly number[],
    /** Float32Array for float types, Float64Array (exact integers, NaN = batch) otherwise. */
    readonly values: Float32Array | Float64Array,
  ) {
    const count = dims.reduce((a, b) => a * b, 1);
    if (values.length !== count) {
      throw new KilnError(
        "INTERNAL",
        `a constant of dims [${dims.join(", ")}] holds ${values.length} values`,
      );
    }
  }

  get isFloat(): boolean {
    return ONNX_DATA_TYPES[this.dataType]?.kind === "float";
  }

  get size(): number {
    return this.values.length;
  }

  /** Whether an element stands for the symbolic batch N. */
  get hasBatch(): boolean {
    return !this.isFloat && this.values.some((v) => Number.isNaN(v));
  }

  /** The values as a plain list (for axes, pads, shapes...). */
  list(): number[] {
    return Array.from(this.values);
  }

  static of(dataType: number, dims: readonly number[], values: ArrayLike<number>): ConstTensor {
    const kind = ONNX_DATA_TYPES[dataType]?.kind;
    const arr = kind === "float" ? Float32Array.from(values) : Float64Array.from(values);
    return new ConstTensor(dataType, [...dims], arr);
  }

  static int64(values: readonly number[], dims: readonly number[] = [values.length]) {
    return ConstTensor.of(INT64, dims, values);
  }

  toString(): string {
    const shown = Array.from(
      this.values.subarray(0, 8),
      (v) => (Number.isNaN(v) && !this.isFloat ? "N" : v),
    );
    return `${dataTypeName(this.dataType)} [${this.dims.join(", ")}] {${shown.join(", ")}${
      this.size > 8 ? ", ..." : ""
    }}`;
  }
}

/** Row-major strides. */
export function strides(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length);
  let acc = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= dims[i];
  }
  return s;
}

/** Numpy broadcast of shapes, or undefined when they do not broadcast. */
export function broadcastShapes(shapes: readonly (readonly number[])[]): number[] | undefined {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      if (s[i] === out[o] || s[i] === 1) continue;
      if (out[o] !== 1) return undefined;
      out[o] = s[i];
    }
  }
  return out;
}

/** For each output element of `outDims`, the flat index into an input of `inDims` broadcast to it. */
function broadcastIndex(inDims: readonly number[], outDims: readonly number[]): Int32Array {
  const total = outDims.reduce((a, b) => a * b, 1);
  const rank = outDims.length;
  const inStrides = strides(inDims);
  const map = new Int32Array(total);
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < total; o++) {
    let k = 0;
    for (let d = 0; d < inDims.length; d++) {
      const od = rank - inDims.length + d;
      if (inDims[d] !== 1) k += idx[od] * inStrides[d];
    }
    map[o] = k;
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d] < outDims[d]) break;
      idx[d] = 0;
    }
  }
  return map;
}

function refuseBatch(op: string, inputs: readonly ConstTensor[]): void {
  if (inputs.some((c) => c.hasBatch)) {
    throw new KilnError(
      "UNSUPPORTED",
      `${op} on a shape that holds the symbolic batch N: the result has no representation (give the input a fixed batch with options.inputShapes)`,
    );
  }
}

/** f applied elementwise with numpy broadcasting; the result has `dataType` (the first input's by default). */
export function mapConst(
  op: string,
  inputs: readonly ConstTensor[],
  f: (...v: number[]) => number,
  dataType = inputs[0].dataType,
): ConstTensor {
  refuseBatch(op, inputs);
  const dims = broadcastShapes(inputs.map((c) => c.dims));
  if (!dims) {
    throw new KilnError(
      "SHAPE_MISMATCH",
      `${op}: shapes ${inputs.map((c) => `[${c.dims.join(", ")}]`).join(" and ")} do not broadcast`,
    );
  }
  const maps = inputs.map((c) => broadcastIndex(c.dims, dims));
  const total = dims.reduce((a, b) => a * b, 1);
  const out = new Float64Array(total);
  const args = new Array<number>(inputs.length);
  for (let o = 0; o < total; o++) {
    for (let k = 0; k < inputs.length; k++) args[k] = inputs[k].values[maps[k][o]];
    out[o] = f(...args);
  }
  return ConstTensor.of(dataType, dims, roundTo(dataType, out));
}

/** Values rounded to what `dataType` holds (float32, float16, integers truncated and wrapped). */
export function roundTo(dataType: number, v: ArrayLike<number>): ArrayLike<number> {
  const out = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = roundOne(dataType, v[i]);
  return out;
}

function roundOne(dataType: number, x: number): number {
  if (Number.isNaN(x)) return x;
  switch (dataType) {
    case FLOAT:
    case 11:
      return Math.fround(x);
    case FLOAT16:
      return float16BitsToFloat32(float32ToFloat16Bits(x));
    case 16: // bfloat16: float32 truncated to its top 16 bits after rounding to nearest even
      return bfloat16Round(x);
    case BOOL:
      return x !== 0 ? 1 : 0;
    case 2:
      return wrap(x, 8, false);
    case 3:
      return wrap(x, 8, true);
    case 4:
      return wrap(x, 16, false);
    case 5:
      return wrap(x, 16, true);
    case 6:
      return wrap(x, 32, true);
    case 12:
      return wrap(x, 32, false);
    default:
      return Number.isFinite(x) ? Math.trunc(x) : x;
  }
}

function wrap(x: number, bits: number, signed: boolean): number {
  if (!Number.isFinite(x)) return 0;
  const m = 2 ** bits;
  let v = Math.trunc(x) % m;
  if (v < 0) v += m;
  if (signed && v >= m / 2) v -= m;
  return v;
}

function bfloat16Round(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const rounding = 0x7fff + ((u[0] >>> 16) & 1);
  u[0] = ((u[0] + rounding) >>> 16) << 16;
  return f[0];
}

/** Cast with ONNX's rules: float→integer truncates toward zero; →bool is x ≠ 0. */
export function castConst(c: ConstTensor, to: number): ConstTensor {
  if (ONNX_DATA_TYPES[to]?.kind === "float" || to === BOOL) refuseBatch("Cast", [c]);
  return ConstTensor.of(to, c.dims, roundTo(to, c.values));
}

export function reshapeConst(c: ConstTensor, dims: readonly number[]): ConstTensor {
  return new ConstTensor(c.dataType, [...dims], c.values.slice());
}

export function transposeConst(c: ConstTensor, perm: readonly number[]): ConstTensor {
  const dims = perm.map((p) => c.dims[p]);
  const inStrides = strides(c.dims);
  const total = c.size;
  const out = c.isFloat ? new Float32Array(total) : new Float64Array(total);
  const idx = new Array<number>(dims.length).fill(0);
  for (let o = 0; o < total; o++) {
    let k = 0;
    for (let d = 0; d < dims.length; d++) k += idx[d] * inStrides[perm[d]];
    out[o] = c.values[k];
    for (let d = dims.length - 1; d >= 0; d--) {
      if (++idx[d] < dims[d]) break;
      idx[d] = 0;
    }
  }
  return new ConstTensor(c.dataType, dims, out);
}

/** Elements of `c` picked along `axis` at each of `picks` (already in range). */
export function takeConst(c: ConstTensor, axis: number, picks: readonly number[]): ConstTensor {
  const outer = c.dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = c.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const len = c.dims[axis];
  const out = c.isFloat
    ? new Float32Array(outer * picks.length * inner)
    : new Float64Array(outer * picks.length * inner);
  let o = 0;
  for (let a = 0; a < outer; a++) {
    for (const p of picks) {
      const base = (a * len + p) * inner;
      for (let i = 0; i < inner; i++) out[o++] = c.values[base + i];
    }
  }
  const dims = [...c.dims];
  dims[axis] = picks.length;
  return new ConstTensor(c.dataType, dims, out);
}

export function concatConst(parts: readonly ConstTensor[], axis: number): ConstTensor {
  const first = parts[0];
  const outer = first.dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const total = parts.reduce((a, p) => a + p.size, 0);
  const out = first.isFloat ? new Float32Array(total) : new Float64Array(total);
  let o = 0;
  for (let a = 0; a < outer; a++) {
    for (const p of parts) {
      const chunk = p.size / outer;
      out.set(p.values.subarray(a * chunk, (a + 1) * chunk), o);
      o += chunk;
    }
  }
  const dims = [...first.dims];
  dims[axis] = parts.reduce((a, p) => a + p.dims[axis], 0);
  return new ConstTensor(first.dataType, dims, out);
}

export type ReduceKind = "sum" | "prod" | "max" | "min" | "avg";

/** Reduces over the (normalized, distinct) `axes`. */
export function reduceConst(
  c: ConstTensor,
  axes: readonly number[],
  keepDims: boolean,
  op: ReduceKind,
): ConstTensor {
  refuseBatch(`Reduce ${op}`, [c]);
  const reduced = new Set(axes);
  const keptDims = c.dims.map((d, i) => (reduced.has(i) ? 1 : d));
  const outSize = keptDims.reduce((a, b) => a * b, 1);
  const acc = new Float64Array(outSize).fill(
    op === "prod" ? 1 : op === "max" ? -Infinity : op === "min" ? Infinity : 0,
  );
  const outStrides = strides(keptDims);
  const idx = new Array<number>(c.dims.length).fill(0);
  for (let i = 0; i < c.size; i++) {
    let o = 0;
    for (let d = 0; d < idx.length; d++) if (!reduced.has(d)) o += idx[d] * outStrides[d];
    const v = c.values[i];
    if (op === "sum" || op === "avg") acc[o] += v;
    else if (op === "prod") acc[o] *= v;
    else if (op === "max") acc[o] = v > acc[o] || Number.isNaN(v) ? v : acc[o];
    else acc[o] = v < acc[o] || Number.isNaN(v) ? v : acc[o];
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < c.dims[d]) break;
      idx[d] = 0;
    }
  }
  if (op === "avg") {
    const n = c.dims.reduce((a, d, i) => (reduced.has(i) ? a * d : a), 1);
    for (let o = 0; o < outSize; o++) acc[o] /= n;
  }
  const dims = keepDims ? keptDims : c.dims.filter((_, i) => !reduced.has(i));
  return ConstTensor.of(c.dataType, dims, roundTo(c.dataType, acc));
}
