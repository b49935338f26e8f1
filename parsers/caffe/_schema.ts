/**
 * caffe.proto (beside this file: BVLC/caffe's src/caffe/proto/caffe.proto at 9b89154, BSD-2-Clause,
 * byte for byte) read once with protobufjs reflection.
 */
import protobuf from "protobufjs";
import { KilnError } from "../../errors.ts";

export interface CaffeSchema {
  root: protobuf.Root;
  net: protobuf.Type;
  layer: protobuf.Type;
  blob: protobuf.Type;
}

let schema: CaffeSchema | undefined;

export function caffeSchema(): CaffeSchema {
  if (schema) return schema;
  const url = new URL("./caffe.proto", import.meta.url);
  let text: string;
  try {
    text = Deno.readTextFileSync(url);
  } catch (e) {
    throw new KilnError("IO_ERROR", `cannot read Kiln's schema ${url.href}: ${e}`, {
      file: url.href,
      cause: e,
    });
  }
  // keepCase: fields keep their .proto names (num_output, kernel_size, ...), as in prototxt files.
  const root = protobuf.parse(text, { keepCase: true }).root;
  root.resolveAll();
  schema = {
    root,
    net: root.lookupType("caffe.NetParameter"),
    layer: root.lookupType("caffe.LayerParameter"),
    blob: root.lookupType("caffe.BlobProto"),
  };
  return schema;
}
