/**
 * A decoded ModelProto in the shape the importer works with: nodes with their attributes by
 * name, graph inputs and outputs with their declared element types and dims, initializers (still
 * as TensorProto objects: each is decoded when an importer first reads it), opsets by domain.
 */
import { KilnError } from "../../errors.ts";
import { decodeMessage, type Msg, onnxSchema } from "./_schema.ts";

/** AttributeProto.AttributeType. */
export const ATTR = {
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
} as const;

const ATTR_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(ATTR).map(([k, v]) => [v, k]),
);

export function attrTypeName(type: number): string {
  return ATTR_NAMES[type] ?? `type ${type}`;
}

export interface OnnxAttribute {
  name: string;
  /** AttributeProto.AttributeType (inferred from the field set when the model leaves it 0). */
  type: number;
  f?: number;
  i?: number;
  s?: string;
  t?: Msg;
  floats?: number[];
  ints?: number[];
  strings?: string[];
}

export interface OnnxNode {
  /** Position in the graph as written. */
  index: number;
  /** The node's name, or `<op_type>_<index>` when it has none. */
  name: string;
  opType: string;
  /** "" for the default domain (ai.onnx). */
  domain: string;
  /** Value names; "" marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attrs: Map<string, OnnxAttribute>;
}

/** A dim as declared: a size, a symbolic name, or undefined when unknown. */
export type DeclaredDim = number | string | undefined;

export interface OnnxValueInfo {
  name: string;
  /** TensorProto.DataType, undefined when the value is not a tensor or the type is missing. */
  elemType?: number;
  /** undefined when the shape is not declared. */
  dims?: DeclaredDim[];
}

export interface OnnxModel {
  file: string;
  irVersion: number;
  producer: string;
  /** Opset versions by domain ("" for ai.onnx). */
  opsets: Map<string, number>;
  nodes: OnnxNode[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  /** Initializers by name, as TensorProto objects. */
  initializers: Map<string, Msg>;
}

const utf8 = new TextDecoder();

export function normalizeDomain(domain: unknown): string {
  const d = typeof domain === "string" ? domain : "";
  return d === "ai.onnx" ? "" : d;
}

/** Decodes a ModelProto. Malformed bytes and structures are PARSE_ERRORs naming the file. */
export function decodeModel(bytes: Uint8Array, file: string): OnnxModel {
  const m = decodeMessage(onnxSchema().model, bytes, file);
  const fail = (msg: string): never => {
    throw new KilnError("PARSE_ERROR", `${file}: ${msg}`, { file });
  };
  if (!m.graph) fail("the model has no graph (not an ONNX model?)");
  const g = m.graph as Msg;
  const opsets = new Map<string, number>();
  for (const o of (m.opset_import ?? []) as Msg[]) {
    const d = normalizeDomain(o.domain);
    const v = Number(o.version ?? 0);
    if (opsets.has(d) && opsets.get(d) !== v) {
      fail(`opset_import names domain "${d || "ai.onnx"}" twice (${opsets.get(d)} and ${v})`);
    }
    opsets.set(d, v);
  }
  const nodes = ((g.node ?? []) as Msg[]).map((n, index) => decodeNode(n, index, file));
  const initializers = new Map<string, Msg>();
  for (const [i, t] of ((g.initializer ?? []) as Msg[]).entries()) {
    const name = typeof t.name === "string" ? t.name : "";
    if (!name) fail(`initializer ${i} has no name`);
    if (initializers.has(name)) fail(`two initializers are named "${name}"`);
    initializers.set(name, t);
  }
  if (((g.sparse_initializer ?? []) as Msg[]).length) {
    throw new KilnError("UNSUPPORTED", `${file}: sparse initializers are not supported`, { file });
  }
  return {
    file,
    irVersion: Number(m.ir_version ?? 0),
    producer: `${m.producer_name ?? ""} ${m.producer_version ?? ""}`.trim(),
    opsets,
    nodes,
    inputs: ((g.input ?? []) as Msg[]).map((v, i) => valueInfo(v, `graph input ${i}`, file)),
    outputs: ((g.output ?? []) as Msg[]).map((v, i) => valueInfo(v, `graph output ${i}`, file)),
    initializers,
  };
}

function decodeNode(n: Msg, index: number, file: string): OnnxNode {
  const opType = typeof n.op_type === "string" ? n.op_type : "";
  const name = typeof n.name === "string" && n.name !== ""
    ? n.name
    : `${opType || "node"}_${index}`;
  if (!opType) {
    throw new KilnError("PARSE_ERROR", `${file}: node ${index} ("${name}") has no op_type`, {
      file,
      layer: name,
    });
  }
  const attrs = new Map<string, OnnxAttribute>();
  for (const a of (n.attribute ?? []) as Msg[]) {
    const attr = decodeAttribute(a);
    if (attrs.has(attr.name)) {
      throw new KilnError(
        "PARSE_ERROR",
        `${file}: node ${index} "${name}" (${opType}) sets attribute "${attr.name}" twice`,
        { file, layer: name },
      );
    }
    attrs.set(attr.name, attr);
  }
  return {
    index,
    name,
    opType,
    domain: normalizeDomain(n.domain),
    inputs: ((n.input ?? []) as unknown[]).map(String),
    outputs: ((n.output ?? []) as unknown[]).map(String),
    attrs,
  };
}

function decodeAttribute(a: Msg): OnnxAttribute {
  let type = Number(a.type ?? 0);
  if (type === 0) {
    // Old exporters leave the type out; the field that is set tells it.
    if (a.f !== undefined) type = ATTR.FLOAT;
    else if (a.i !== undefined) type = ATTR.INT;
    else if (a.s !== undefined) type = ATTR.STRING;
    else if (a.t !== undefined) type = ATTR.TENSOR;
    else if (a.g !== undefined) type = ATTR.GRAPH;
    else if (a.floats?.length) type = ATTR.FLOATS;
    else if (a.ints?.length) type = ATTR.INTS;
    else if (a.strings?.length) type = ATTR.STRINGS;
  }
  return {
    name: String(a.name ?? ""),
    type,
    f: a.f === undefined ? undefined : Number(a.f),
    i: a.i === undefined ? undefined : Number(a.i),
    s: a.s instanceof Uint8Array ? utf8.decode(a.s) : undefined,
    t: a.t,
    floats: a.floats ? (a.floats as unknown[]).map(Number) : undefined,
    ints: a.ints ? (a.ints as unknown[]).map(Number) : undefined,
    strings: a.strings ? (a.strings as Uint8Array[]).map((s) => utf8.decode(s)) : undefined,
  };
}

function valueInfo(v: Msg, what: string, file: string): OnnxValueInfo {
  const name = typeof v.name === "string" ? v.name : "";
  if (!name) throw new KilnError("PARSE_ERROR", `${file}: ${what} has no name`, { file });
  const tt = v.type?.tensor_type as Msg | undefined;
  if (!tt) return { name };
  const elemType = tt.elem_type === undefined ? undefined : Number(tt.elem_type);
  if (!tt.shape) return { name, elemType };
  const dims = ((tt.shape.dim ?? []) as Msg[]).map((d): DeclaredDim => {
    if (d.dim_value !== undefined) return Number(d.dim_value);
    if (typeof d.dim_param === "string" && d.dim_param !== "") return d.dim_param;
    return undefined;
  });
  return { name, elemType, dims };
}
