/**
 * A small reader for ONNX's conformance data (onnx/backend/test/data/node/*): TensorProto `.pb`
 * files and the attributes of the nodes of a `model.onnx`, decoded with protobufjs from
 * ../shared/data/proto/onnx.proto. For tests only: the ONNX importer has its own parser.
 */
import protobuf from "protobufjs";

export const SHARED_DATA = new URL("../../shared/data/", import.meta.url);
const ONNX_PROTO = new URL("proto/onnx.proto", SHARED_DATA);

let root: protobuf.Root | undefined;

function schema(): protobuf.Root {
  if (!root) {
    // keepCase: fields keep their .proto names (data_type, raw_data, float_data...).
    root = new protobuf.Root();
    protobuf.parse(Deno.readTextFileSync(ONNX_PROTO), root, { keepCase: true });
  }
  return root;
}

/** A decoded tensor: float tensors as Float32Array, integer ones as Int32Array. */
export interface OnnxTensor {
  name: string;
  dims: number[];
  data: Float32Array | Int32Array;
}

/** TensorProto.DataType values this reader understands. */
const FLOAT = 1, INT32 = 6, INT64 = 7, DOUBLE = 11;

// deno-lint-ignore no-explicit-any
type Msg = Record<string, any>;

function toNumber(v: number | { toNumber(): number } | string): number {
  if (typeof v === "number") return v;
  if (typeof v === "string") return Number(v);
  return v.toNumber();
}

function decodeTensor(t: Msg, where: string): OnnxTensor {
  const dims = (t.dims ?? []).map(toNumber) as number[];
  const count = dims.reduce((a, b) => a * b, 1);
  const raw: Uint8Array | undefined = t.raw_data?.length ? t.raw_data : undefined;
  // Copy raw bytes so the typed array view is aligned.
  const bytes = raw ? new Uint8Array(raw).buffer : undefined;
  let data: Float32Array | Int32Array;
  switch (t.data_type) {
    case FLOAT:
      data = bytes ? new Float32Array(bytes) : Float32Array.from(t.float_data ?? []);
      break;
    case DOUBLE:
      data = Float32Array.from(bytes ? new Float64Array(bytes) : t.double_data ?? []);
      break;
    case INT32:
      data = bytes ? new Int32Array(bytes) : Int32Array.from(t.int32_data ?? []);
      break;
    case INT64:
      data = bytes
        ? Int32Array.from(new BigInt64Array(bytes), (v) => Number(v))
        : Int32Array.from((t.int64_data ?? []).map(toNumber));
      break;
    default:
      throw new Error(`${where}: tensor data_type ${t.data_type} is not supported by this reader`);
  }
  if (data.length !== count) {
    throw new Error(`${where}: ${data.length} values for dims [${dims}] (${count} expected)`);
  }
  return { name: t.name ?? "", dims, data };
}

/** Reads one serialized TensorProto (`input_0.pb`, `output_0.pb`, ...). */
export function readTensorFile(path: string | URL): OnnxTensor {
  const type = schema().lookupType("onnx.TensorProto");
  const msg = type.toObject(type.decode(Deno.readFileSync(path)), { defaults: false }) as Msg;
  return decodeTensor(msg, String(path));
}

export type OnnxAttr = number | string | number[] | string[] | OnnxTensor;

export interface OnnxNode {
  opType: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, OnnxAttr>;
}

export interface OnnxModelInfo {
  nodes: OnnxNode[];
  /** Names of the graph inputs and outputs, in order (test_data_set files follow this order). */
  inputs: string[];
  outputs: string[];
}

/** Reads the nodes (op type, inputs, outputs, attributes) and graph inputs/outputs of a model. */
export function readModel(path: string | URL): OnnxModelInfo {
  const type = schema().lookupType("onnx.ModelProto");
  const model = type.toObject(type.decode(Deno.readFileSync(path)), { defaults: false }) as Msg;
  const graph = model.graph ?? {};
  const nodes = (graph.node ?? []).map((n: Msg): OnnxNode => {
    const attrs: Record<string, OnnxAttr> = {};
    for (const a of n.attribute ?? []) attrs[a.name] = attrValue(a, String(path));
    return {
      opType: n.op_type,
      name: n.name ?? "",
      inputs: n.input ?? [],
      outputs: n.output ?? [],
      attrs,
    };
  });
  return {
    nodes,
    inputs: (graph.input ?? []).map((v: Msg) => v.name as string),
    outputs: (graph.output ?? []).map((v: Msg) => v.name as string),
  };
}

const decoder = new TextDecoder();

function attrValue(a: Msg, where: string): OnnxAttr {
  // AttributeProto.AttributeType: FLOAT 1, INT 2, STRING 3, TENSOR 4, FLOATS 6, INTS 7, STRINGS 8.
  switch (a.type) {
    case 1:
      return a.f ?? 0;
    case 2:
      return toNumber(a.i ?? 0);
    case 3:
      return decoder.decode(a.s ?? new Uint8Array());
    case 4:
      return decodeTensor(a.t, `${where}: attribute ${a.name}`);
    case 6:
      return [...(a.floats ?? [])];
    case 7:
      return (a.ints ?? []).map(toNumber);
    case 8:
      return (a.strings ?? []).map((s: Uint8Array) => decoder.decode(s));
    default:
      throw new Error(`${where}: attribute ${a.name} has unsupported type ${a.type}`);
  }
}
