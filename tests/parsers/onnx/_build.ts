/**
 * Writes small ONNX models for the importer's tests: a plain description in, ModelProto bytes
 * out (protobufjs over onnx.proto). Attributes are typed explicitly: `{ axis: i(1) }`.
 */
import { onnxSchema } from "../../../parsers/onnx/_schema.ts";

export type Attr =
  | { type: 1; f: number }
  | { type: 2; i: number }
  | { type: 3; s: Uint8Array }
  | { type: 4; t: Record<string, unknown> }
  | { type: 6; floats: number[] }
  | { type: 7; ints: number[] }
  | { type: 8; strings: Uint8Array[] };

export const f = (v: number): Attr => ({ type: 1, f: v });
export const i = (v: number): Attr => ({ type: 2, i: v });
export const s = (v: string): Attr => ({ type: 3, s: new TextEncoder().encode(v) });
export const floats = (v: number[]): Attr => ({ type: 6, floats: v });
export const ints = (v: number[]): Attr => ({ type: 7, ints: v });
export const strings = (v: string[]): Attr => ({
  type: 8,
  strings: v.map((x) => new TextEncoder().encode(x)),
});
export const t = (v: TensorSpec): Attr => ({ type: 4, t: tensorProto(v) });

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attrs?: Record<string, Attr>;
}

export interface ValueSpec {
  name: string;
  /** TensorProto.DataType; FLOAT (1) by default. */
  type?: number;
  /** Sizes, symbolic names, or undefined for an unknown dim; omitted: no shape. */
  dims?: (number | string | undefined)[];
}

export interface TensorSpec {
  name?: string;
  type?: number;
  dims: number[];
  values: ArrayLike<number>;
  /** Store in an external file instead: location, offset (the bytes are not written here). */
  external?: { location: string; offset?: number; length?: number };
}

export interface ModelSpec {
  irVersion?: number;
  /** ai.onnx opset (13 by default). */
  opset?: number;
  /** More opset imports, e.g. { domain: "com.microsoft", version: 1 }. */
  opsets?: { domain: string; version: number }[];
  nodes: NodeSpec[];
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  initializers?: TensorSpec[];
}

/** Little-endian bytes of values in a TensorProto data type (FLOAT, INT32, INT64, DOUBLE). */
export function rawBytes(type: number, values: ArrayLike<number>): Uint8Array {
  switch (type) {
    case 1:
      return new Uint8Array(Float32Array.from(values).buffer);
    case 6:
      return new Uint8Array(Int32Array.from(values).buffer);
    case 7:
      // Clamped: 2^63 − 1 (INT64_MAX, "to the end" in Slice) is not exact as a double.
      return new Uint8Array(
        BigInt64Array.from(
          Array.from(values),
          (v) => v >= 2 ** 63 ? 2n ** 63n - 1n : v <= -(2 ** 63) ? -(2n ** 63n) : BigInt(v),
        ).buffer,
      );
    case 11:
      return new Uint8Array(Float64Array.from(values).buffer);
  }
  throw new Error(`rawBytes: type ${type}`);
}

export function tensorProto(v: TensorSpec): Record<string, unknown> {
  const type = v.type ?? 1;
  const base = { name: v.name ?? "", dims: v.dims, data_type: type };
  if (v.external) {
    const kv = [{ key: "location", value: v.external.location }];
    if (v.external.offset !== undefined) {
      kv.push({ key: "offset", value: String(v.external.offset) });
    }
    if (v.external.length !== undefined) {
      kv.push({ key: "length", value: String(v.external.length) });
    }
    return { ...base, data_location: 1, external_data: kv };
  }
  return { ...base, raw_data: rawBytes(type, v.values) };
}

function valueInfo(v: ValueSpec): Record<string, unknown> {
  const tensor: Record<string, unknown> = { elem_type: v.type ?? 1 };
  if (v.dims) {
    tensor.shape = {
      dim: v.dims.map((d) =>
        typeof d === "number" ? { dim_value: d } : typeof d === "string" ? { dim_param: d } : {}
      ),
    };
  }
  return { name: v.name, type: { tensor_type: tensor } };
}

/** The model as a plain object (mutable before encoding, for the fuzz tests). */
export function modelObject(m: ModelSpec): Record<string, unknown> {
  return {
    ir_version: m.irVersion ?? 8,
    producer_name: "kiln-tests",
    opset_import: [{ domain: "", version: m.opset ?? 13 }, ...(m.opsets ?? [])],
    graph: {
      name: "test",
      node: m.nodes.map((n, k) => ({
        name: n.name ?? `${n.op.toLowerCase()}${k}`,
        op_type: n.op,
        domain: n.domain ?? "",
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs ?? {}).map(([name, a]) => ({ name, ...a })),
      })),
      input: m.inputs.map(valueInfo),
      output: m.outputs.map(valueInfo),
      initializer: (m.initializers ?? []).map(tensorProto),
    },
  };
}

export function encodeModel(obj: Record<string, unknown>): Uint8Array {
  const type = onnxSchema().model;
  // A copy in a plain Uint8Array (protobufjs may hand out a Node Buffer).
  return Uint8Array.from(type.encode(type.fromObject(obj)).finish());
}

export function modelBytes(m: ModelSpec): Uint8Array {
  return encodeModel(modelObject(m));
}
