/**
 * The Caffe importer: `parseCaffe({deploy, model?})` reads a prototxt (protobuf text format,
 * current or legacy V1 layers) and, optionally, a `.caffemodel` (binary NetParameter; weights
 * matched by layer name) and returns a Kiln network plus the tensor behind every blob name.
 *
 *   const { network, blobs } = await parseCaffe({ deploy: "mnist.prototxt", model: "mnist.caffemodel" });
 *   network.markOutput(blobs.get("prob"));
 *
 * The input's first dim becomes the symbolic batch N. Without a model file the weights are
 * seeded random values of the right shapes (a warning says so). Layers Kiln does not implement
 * can be built by a plugin factory; the others are all reported in one error.
 */
import type { Tensor } from "../../dsl/ir/graph.ts";
import type { Network } from "../../dsl/network.ts";
import { KilnError } from "../../errors.ts";
import type { Logger } from "../../runtime/logger.ts";
import { parseTextFormat, type TextMessage } from "./text_format.ts";
import { buildNetwork, type CaffePluginFactory, type CaffeWeights } from "./_build.ts";
import { readBlobProto, readCaffeModel } from "./_model.ts";
import { layersOf } from "./_net.ts";
import type { CaffeDiagnostic } from "./_registry.ts";
import { caffeSchema } from "./_schema.ts";

export type { CaffePluginFactory, CaffeWeights } from "./_build.ts";
export type { CaffeDiagnostic } from "./_registry.ts";

export interface ParseCaffeOptions {
  /**
   * The prototxt: a file path, or its contents (a string with a newline, `{` or `"` in it is
   * taken as contents), or its bytes.
   */
  deploy: string | Uint8Array;
  /** The .caffemodel: a file path or its bytes. Without it the weights are random. */
  model?: string | Uint8Array;
  pluginFactory?: CaffePluginFactory;
  /** Receives the diagnostics (notes at info, warnings at warning). */
  logger?: Logger;
  /**
   * Dims of blobs produced by skipped data layers of a train/test prototxt, which then become
   * network inputs (their first dim becomes N), e.g. `{ data: [64, 1, 28, 28] }`.
   */
  inputShapes?: Record<string, number[]>;
  /** Seed of the random weights used without a model file. Default 1. */
  seed?: number;
}

export interface ParseCaffeResult {
  network: Network;
  /** Every blob name → the tensor of its last write. */
  blobs: Map<string, Tensor>;
  diagnostics: CaffeDiagnostic[];
}

/** Imports a Caffe network (and its weights). */
export async function parseCaffe(options: ParseCaffeOptions): Promise<ParseCaffeResult> {
  if (options === null || typeof options !== "object") {
    throw new KilnError(
      "INVALID_ARGUMENT",
      "parseCaffe expects an options object {deploy, model?}",
    );
  }
  const deploy = await readSource(options.deploy, "deploy", true);
  const model = options.model === undefined
    ? undefined
    : await readSource(options.model, "model", false);
  const schema = caffeSchema();
  const diagnostics: CaffeDiagnostic[] = [];
  const net = parseTextFormat(decodeText(deploy.bytes, deploy.file), schema.net, {
    file: deploy.file,
  });
  const layers = layersOf(net, deploy.file);
  const weights = model ? readCaffeModel(model.bytes, model.file, schema) : undefined;
  const state = (net.state ?? {}) as TextMessage;
  if (state.phase === "TRAIN") {
    diagnostics.push({
      severity: "note",
      message: "state.phase TRAIN is ignored: inference runs the TEST phase",
    });
  }
  const { network, blobs } = buildNetwork({
    file: deploy.file,
    layers,
    state: { level: (state.level ?? 0) as number, stage: (state.stage ?? []) as string[] },
    layerType: schema.layer,
    weights: weights?.byLayer,
    seed: options.seed ?? 1,
    pluginFactory: options.pluginFactory,
    inputShapes: options.inputShapes,
    diagnostics,
  });
  if (weights) {
    const used = new Set(layers.map((l) => l.name));
    const unused = [...weights.byLayer.keys()].filter((n) => !used.has(n));
    if (unused.length) {
      diagnostics.push({
        severity: "note",
        message: `the model has blobs for layers not in the prototxt (ignored): ${
          unused.join(", ")
        }`,
      });
    }
  }
  if (options.logger) {
    for (const d of diagnostics) {
      const where = d.line ? ` (line ${d.line})` : "";
      if (d.severity === "warning") options.logger.warning(`${d.message}${where}`);
      else options.logger.info(`${d.message}${where}`);
    }
  }
  return { network, blobs, diagnostics };
}

/** A deploy or model argument as bytes, with the file name that errors will name. */
async function readSource(
  src: string | Uint8Array,
  what: "deploy" | "model" | "blob",
  textAllowed: boolean,
): Promise<{ bytes: Uint8Array; file: string }> {
  if (src instanceof Uint8Array) return { bytes: src, file: `<${what}>` };
  if (typeof src !== "string") {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `parseCaffe: "${what}" must be a file path, ${
        textAllowed ? "the prototxt text " : ""
      }or a Uint8Array, got ${src === null ? "null" : typeof src}`,
    );
  }
  if (textAllowed && /[\n{"]/.test(src)) {
    return { bytes: new TextEncoder().encode(src), file: `<${what}>` };
  }
  try {
    return { bytes: await Deno.readFile(src), file: src };
  } catch (e) {
    throw new KilnError(
      "IO_ERROR",
      `cannot read the ${what} file "${src}": ${e instanceof Error ? e.message : e}`,
      {
        file: src,
        cause: e,
      },
    );
  }
}

function decodeText(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (e) {
    throw new KilnError("PARSE_ERROR", `${file}: the prototxt is not UTF-8 text`, {
      file,
      cause: e,
    });
  }
}

/** Reads a `.binaryproto` BlobProto (a path or its bytes), e.g. sampleMNIST's mean image. */
export async function readCaffeBlob(src: string | Uint8Array): Promise<CaffeWeights> {
  const { bytes, file } = await readSource(src, "blob", false);
  return readBlobProto(bytes, file, caffeSchema());
}
