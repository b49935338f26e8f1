/**
 * onnx.proto (beside this file: onnx/onnx's onnx/onnx.proto at 6be0677, the commit of the
 * conformance tests in ../shared/data, Apache-2.0 as its SPDX header says, byte for byte) read
 * once with protobufjs reflection. Copied rather than taken from the npm `onnx-proto` package:
 * that package is generated code frozen at an older IR (no IR 10+ fields such as
 * `metadata_props` or the newer element types), while the .proto read at run time is the schema
 * the test models were written with.
 */
import protobuf from "protobufjs";
import { KilnError } from "../../errors.ts";

export interface OnnxSchema {
  model: protobuf.Type;
  tensor: protobuf.Type;
}

let schema: OnnxSchema | undefined;

export function onnxSchema(): OnnxSchema {
  if (schema) return schema;
  const url = new URL("./onnx.proto", import.meta.url);
  let text: string;
  try {
    text = Deno.readTextFileSync(url);
  } catch (e) {
    throw new KilnError("IO_ERROR", `cannot read Kiln's schema ${url.href}: ${e}`, {
      file: url.href,
      cause: e,
    });
  }
  // keepCase: fields keep their .proto names (op_type, raw_data, dim_value...).
  const root = protobuf.parse(text, { keepCase: true }).root;
  root.resolveAll();
  schema = {
    model: root.lookupType("onnx.ModelProto"),
    tensor: root.lookupType("onnx.TensorProto"),
  };
  return schema;
}

// deno-lint-ignore no-explicit-any
export type Msg = Record<string, any>;

/**
 * Decodes one message to a plain object: int64 as numbers, absent fields absent (so presence
 * can be told from a default). Malformed bytes are a PARSE_ERROR naming the file and offset.
 */
export function decodeMessage(type: protobuf.Type, bytes: Uint8Array, file: string): Msg {
  try {
    // A plain Uint8Array view: protobufjs reads Node Buffers with a reader whose bytes fields
    // are views into the whole buffer.
    const msg = type.decode(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return type.toObject(msg, { longs: Number, defaults: false, enums: Number }) as Msg;
  } catch (e) {
    const offset = protobufOffset(e);
    throw new KilnError(
      "PARSE_ERROR",
      `${file}: not a valid ${type.name} (${e instanceof Error ? e.message : String(e)})`,
      { file, offset, cause: e },
    );
  }
}

/** protobufjs reports "index out of range: <pos> + <n> > <len>"; the position is the offset. */
function protobufOffset(e: unknown): number | undefined {
  const m = /index out of range: (\d+)/.exec(e instanceof Error ? e.message : "");
  return m ? Number(m[1]) : undefined;
}
