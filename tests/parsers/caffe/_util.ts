/** Helpers for the Caffe importer tests: encode .caffemodel bytes, parse, build and run on the CPU. */
import protobuf from "protobufjs";
import { buildEngine } from "../../../builder/build.ts";
import type { HostArray } from "../../../dsl/ir/dtype.ts";
import { parseCaffe, type ParseCaffeResult } from "../../../parsers/caffe/mod.ts";
import { Logger } from "../../../runtime/logger.ts";

/** The shared test data folder (../shared/data from the repository root). */
export const DATA = new URL("../../../../shared/data/", import.meta.url).pathname;

export function hasData(path: string): boolean {
  try {
    Deno.statSync(DATA + path);
    return true;
  } catch {
    return false;
  }
}

let root: protobuf.Root | undefined;
function schema(): protobuf.Root {
  if (!root) {
    const text = Deno.readTextFileSync(
      new URL("../../../parsers/caffe/caffe.proto", import.meta.url),
    );
    root = protobuf.parse(text, { keepCase: true }).root;
    root.resolveAll(); // (resolves [packed = true]: blobs are written packed, as Caffe does)
  }
  return root;
}

export interface ModelBlob {
  dims: number[];
  data: ArrayLike<number>;
  /** Write num/channels/height/width (4 dims) instead of `shape`, as old Caffe did. */
  legacyShape?: boolean;
  /** Write double_data instead of data. */
  double?: boolean;
}

/** A .caffemodel (binary NetParameter) holding these layers' blobs, as `layer` or V1 `layers`. */
export function encodeModel(
  layers: { name: string; type?: string; blobs: ModelBlob[] }[],
  options: { legacyLayers?: boolean } = {},
): Uint8Array {
  const r = schema();
  const blob = (b: ModelBlob) => {
    const values = { [b.double ? "double_data" : "data"]: Array.from(b.data) };
    if (b.legacyShape) {
      const [num, channels, height, width] = b.dims;
      return { num, channels, height, width, ...values };
    }
    return { shape: { dim: b.dims }, ...values };
  };
  const net = options.legacyLayers
    ? { layers: layers.map((l) => ({ name: l.name, type: 4, blobs: l.blobs.map(blob) })) }
    : {
      layer: layers.map((l) => ({ name: l.name, type: l.type ?? "", blobs: l.blobs.map(blob) })),
    };
  const type = r.lookupType("caffe.NetParameter");
  // A plain copy: protobufjs may hand back a Node Buffer, whose slice() shares memory.
  return new Uint8Array(type.encode(type.fromObject(net)).finish());
}

/**
 * Parses a prototxt (and model), marks the `outputs` blobs, builds on the CPU and runs once;
 * the outputs come back by blob name.
 */
export async function runCaffe(
  deploy: string,
  options: {
    model?: Uint8Array;
    inputs: Record<string, HostArray>;
    outputs: string[];
    batch?: number;
  },
): Promise<{ outs: Record<string, HostArray>; parsed: ParseCaffeResult }> {
  const parsed = await parseCaffe({ deploy, model: options.model });
  for (const o of options.outputs) parsed.network.markOutput(parsed.blobs.get(o));
  const engine = await buildEngine(parsed.network, {
    device: "cpu",
    maxBatchSize: 4,
    logger: new Logger("error"),
  });
  try {
    using ctx = engine.createContext();
    const byTensor = await ctx.execute(options.inputs, { batchSize: options.batch });
    const outs: Record<string, HostArray> = {};
    for (const o of options.outputs) outs[o] = byTensor[parsed.blobs.get(o)!.name];
    return { outs, parsed };
  } finally {
    engine[Symbol.dispose]();
  }
}
