/**
 * ONNX TensorProto decoding: initializers, Constant values, and the serialized tensors of ONNX's
 * conformance data (`input_0.pb`, `output_0.pb`). Float types decode to float32 values, integer
 * and bool types to exact numbers (int64 beyond ±2^53 rounds, as JavaScript numbers do).
 *
 *   const t = await readOnnxTensor("test_data_set_0/input_0.pb");
 *   ctx.execute({ [t.name]: onnxHostArray(t) });
 */
import { float16BitsToFloat32, float32ToFloat16Bits } from "../../dsl/ir/dtype.ts";
import type { DType, HostArray } from "../../dsl/ir/dtype.ts";
import { KilnError } from "../../errors.ts";
import { decodeMessage, type Msg, onnxSchema } from "./_schema.ts";

/** TensorProto.DataType codes and how Kiln reads each. */
export const ONNX_DATA_TYPES: Readonly<
  Record<number, { name: string; bytes: number; kind: "float" | "int" | "bool" | "other" }>
> = {
  1: { name: "FLOAT", bytes: 4, kind: "float" },
  2: { name: "UINT8", bytes: 1, kind: "int" },
  3: { name: "INT8", bytes: 1, kind: "int" },
  4: { name: "UINT16", bytes: 2, kind: "int" },
  5: { name: "INT16", bytes: 2, kind: "int" },
  6: { name: "INT32", bytes: 4, kind: "int" },
  7: { name: "INT64", bytes: 8, kind: "int" },
  8: { name: "STRING", bytes: 0, kind: "other" },
  9: { name: "BOOL", bytes: 1, kind: "bool" },
  10: { name: "FLOAT16", bytes: 2, kind: "float" },
  11: { name: "DOUBLE", bytes: 8, kind: "float" },
  12: { name: "UINT32", bytes: 4, kind: "int" },
  13: { name: "UINT64", bytes: 8, kind: "int" },
  14: { name: "COMPLEX64", bytes: 8, kind: "other" },
  15: { name: "COMPLEX128", bytes: 16, kind: "other" },
  16: { name: "BFLOAT16", bytes: 2, kind: "float" },
};

export const FLOAT = 1, INT32 = 6, INT64 = 7, BOOL = 9, FLOAT16 = 10;

/** The name of a data type code, for messages. */
export function dataTypeName(code: number): string {
  return ONNX_DATA_TYPES[code]?.name ?? `data type ${code}`;
}

/**
 * The Kiln dtype that carries an ONNX element type at run time (int64 travels as int32, as in
 * TensorRT), or undefined when Kiln has none.
 */
export function kilnDTypeOf(code: number): DType | undefined {
  switch (code) {
    case FLOAT:
      return "float32";
    case FLOAT16:
      return "float16";
    case INT32:
    case INT64:
      return "int32";
    case 3:
      return "int8";
  }
  return undefined;
}

/** A decoded tensor. */
export interface OnnxTensorData {
  name: string;
  /** TensorProto.DataType. */
  dataType: number;
  dims: number[];
  /** Float types as float32 values; integer and bool types as numbers. */
  values: Float32Array | Float64Array;
}

/** The most elements Kiln decodes in one tensor (1 GiB of float32): larger claims are refused. */
export const MAX_TENSOR_ELEMENTS = 2 ** 28;

/** The bytes of an external-data file named by `location` (relative to the model's folder). */
export type ExternalReader = (location: string, where: string) => Uint8Array;

/** Element count of `dims`, checked: non-negative integers, at most MAX_TENSOR_ELEMENTS. */
export function checkedVolume(dims: readonly number[], where: string, file?: string): number {
  let count = 1;
  for (const d of dims) {
    if (!(Number.isSafeInteger(d) && d >= 0)) {
      throw new KilnError(
        "PARSE_ERROR",
        `${where}: dims [${dims.join(", ")}] must be non-negative integers`,
        { file },
      );
    }
    count *= d;
    if (count > MAX_TENSOR_ELEMENTS) {
      throw new KilnError(
        "PARSE_ERROR",
        `${where}: dims [${
          dims.join(", ")
        }] hold more than ${MAX_TENSOR_ELEMENTS} elements (Kiln's limit per tensor)`,
        { file },
      );
    }
  }
  return count;
}

/** Decodes a TensorProto (as a plain object from decodeMessage). */
export function decodeTensor(
  t: Msg,
  where: string,
  options: { file?: string; external?: ExternalReader } = {},
): OnnxTensorData {
  const file = options.file;
  const fail = (msg: string, code: "PARSE_ERROR" | "UNSUPPORTED" = "PARSE_ERROR"): never => {
    throw new KilnError(code, `${where}: ${msg}`, { file, tensor: t.name || undefined });
  };
  const dataType = Number(t.data_type ?? 0);
  const info = ONNX_DATA_TYPES[dataType];
  if (!info) {
    fail(
      `unknown or unsupported data type ${dataType}`,
      dataType > 16 ? "UNSUPPORTED" : "PARSE_ERROR",
    );
  }
  if (info.kind === "other") fail(`${info.name} tensors are not supported`, "UNSUPPORTED");
  if (t.segment) fail("segmented tensors are not supported", "UNSUPPORTED");
  const dims = ((t.dims ?? []) as unknown[]).map(Number);
  const count = checkedVolume(dims, where, file);

  let raw: Uint8Array | undefined = t.raw_data instanceof Uint8Array ? t.raw_data : undefined;
  if (t.data_location === 1) raw = externalBytes(t, where, count * info.bytes, options);
  if (raw !== undefined && (raw.length > 0 || count === 0)) {
    if (raw.length !== count * info.bytes) {
      fail(
        `raw_data holds ${raw.length} bytes; ${dataTypeName(dataType)} [${dims.join(", ")}] needs ${
          count * info.bytes
        }`,
      );
    }
    return { name: t.name ?? "", dataType, dims, values: fromRaw(dataType, raw, count) };
  }
  const field = typedField(dataType);
  const list = (t[field] ?? []) as number[];
  if (list.length !== count) {
    fail(
      `${field} holds ${list.length} values; ${dataTypeName(dataType)} [${
        dims.join(", ")
      }] needs ${count}`,
    );
  }
  let values: Float32Array | Float64Array;
  if (dataType === FLOAT16) {
    values = Float32Array.from(list, (b) => float16BitsToFloat32(b & 0xffff));
  } else if (dataType === 16) values = Float32Array.from(list, bfloat16ToFloat32);
  else if (info.kind === "float") values = Float32Array.from(list, Number);
  else values = Float64Array.from(list, Number);
  return { name: t.name ?? "", dataType, dims, values };
}

/** The repeated field that holds a type's values when raw_data is not used. */
function typedField(dataType: number): string {
  switch (dataType) {
    case FLOAT:
      return "float_data";
    case INT64:
      return "int64_data";
    case 11:
      return "double_data";
    case 12:
    case 13:
      return "uint64_data";
    default:
      return "int32_data";
  }
}

function bfloat16ToFloat32(bits: number): number {
  const u = new Uint32Array([(bits & 0xffff) << 16]);
  return new Float32Array(u.buffer)[0];
}

function fromRaw(dataType: number, raw: Uint8Array, count: number): Float32Array | Float64Array {
  // A private, aligned copy (raw_data views into the model's bytes at any offset; a Node
  // Buffer's slice() would be a view too, hence the constructor).
  const buf = new Uint8Array(raw).buffer;
  switch (dataType) {
    case FLOAT:
      return new Float32Array(buf, 0, count);
    case 11:
      return Float32Array.from(new Float64Array(buf, 0, count));
    case FLOAT16:
      return Float32Array.from(new Uint16Array(buf, 0, count), float16BitsToFloat32);
    case 16:
      return Float32Array.from(new Uint16Array(buf, 0, count), bfloat16ToFloat32);
    case 2:
      return Float64Array.from(new Uint8Array(buf, 0, count));
    case 3:
      return Float64Array.from(new Int8Array(buf, 0, count));
    case 4:
      return Float64Array.from(new Uint16Array(buf, 0, count));
    case 5:
      return Float64Array.from(new Int16Array(buf, 0, count));
    case INT32:
      return Float64Array.from(new Int32Array(buf, 0, count));
    case 12:
      return Float64Array.from(new Uint32Array(buf, 0, count));
    case INT64:
      return Float64Array.from(new BigInt64Array(buf, 0, count), Number);
    case 13:
      return Float64Array.from(new BigUint64Array(buf, 0, count), Number);
    case BOOL:
      return Float64Array.from(new Uint8Array(buf, 0, count), (b) => (b ? 1 : 0));
  }
  throw new KilnError("INTERNAL", `no raw decoder for data type ${dataType}`);
}

/** The bytes of an EXTERNAL tensor: `location` (+ `offset`, `length`) in the model's folder. */
function externalBytes(
  t: Msg,
  where: string,
  want: number,
  options: { file?: string; external?: ExternalReader },
): Uint8Array {
  const entries = new Map<string, string>();
  for (const e of (t.external_data ?? []) as Msg[]) entries.set(String(e.key), String(e.value));
  const location = entries.get("location");
  const fail = (msg: string): never => {
    throw new KilnError("PARSE_ERROR", `${where}: external data ${msg}`, {
      file: options.file,
      tensor: t.name || undefined,
    });
  };
  if (!location) fail("has no location");
  if (!options.external) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `${where}: the weights are in the external file "${location}", but the model was given as bytes; pass the model's path or options.baseDir`,
      { file: options.file, tensor: t.name || undefined },
    );
  }
  const bytes = options.external(location!, where);
  const offset = entries.has("offset") ? Number(entries.get("offset")) : 0;
  const length = entries.has("length") ? Number(entries.get("length")) : bytes.length - offset;
  if (!(Number.isSafeInteger(offset) && offset >= 0 && offset <= bytes.length)) {
    fail(`offset ${entries.get("offset")} is outside "${location}" (${bytes.length} bytes)`);
  }
  if (!(Number.isSafeInteger(length) && length >= 0 && offset + length <= bytes.length)) {
    fail(
      `length ${length} at offset ${offset} runs past the end of "${location}" (${bytes.length} bytes)`,
    );
  }
  if (length !== want) fail(`"${location}" gives ${length} bytes; the tensor needs ${want}`);
  return bytes.subarray(offset, offset + length);
}

/** Reads one serialized TensorProto (a path or its bytes), e.g. a conformance test's input. */
export async function readOnnxTensor(source: string | Uint8Array): Promise<OnnxTensorData> {
  let bytes: Uint8Array, file: string;
  if (source instanceof Uint8Array) {
    bytes = source;
    file = "<tensor>";
  } else if (typeof source === "string") {
    file = source;
    try {
      bytes = await Deno.readFile(source);
    } catch (e) {
      throw new KilnError("IO_ERROR", `cannot read "${source}": ${(e as Error).message}`, {
        file,
        cause: e,
      });
    }
  } else {
    throw new KilnError("INVALID_ARGUMENT", "readOnnxTensor expects a file path or a Uint8Array");
  }
  const msg = decodeMessage(onnxSchema().tensor, bytes, file);
  return decodeTensor(msg, file, { file });
}

/**
 * The tensor's values as the host array of a Kiln binding: float32 → Float32Array, float16 →
 * Uint16Array bits, int32/int64 → Int32Array (int64 outside int32 is refused), int8 → Int8Array.
 */
export function onnxHostArray(t: OnnxTensorData): HostArray {
  const dtype = kilnDTypeOf(t.dataType);
  switch (dtype) {
    case "float32":
      return Float32Array.from(t.values);
    case "float16":
      return Uint16Array.from(t.values, float32ToFloat16Bits);
    case "int8":
      return Int8Array.from(t.values);
    case "int32": {
      const bad = t.values.findIndex((v) => !(v >= -(2 ** 31) && v < 2 ** 31));
      if (bad >= 0) {
        throw new KilnError(
          "UNSUPPORTED",
          `tensor "${t.name}": element ${bad} (${
            t.values[bad]
          }) does not fit the int32 binding that carries ${dataTypeName(t.dataType)}`,
          { tensor: t.name },
        );
      }
      return Int32Array.from(t.values);
    }
  }
  throw new KilnError(
    "UNSUPPORTED",
    `tensor "${t.name}": ${dataTypeName(t.dataType)} has no Kiln binding type`,
    { tensor: t.name },
  );
}
