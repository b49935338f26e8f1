/**
 * The ONNX importer: `parseOnnx(pathOrBytes)` reads a ModelProto (IR 3 to 13, ai.onnx opsets 6
 * to 25) and returns a Kiln network whose bindings are the graph's inputs and outputs under
 * their ONNX names (int64 values travel as int32, as in TensorRT).
 *
 *   const { network } = await parseOnnx("mnist.onnx");
 *   const engine = await buildEngine(network, { device: "cpu" });
 *
 * A symbolic or unknown leading input dim becomes the batch N; other symbolic dims need
 * `inputShapes`. Initializers and Constant nodes are constants, and so is what is computed from
 * them alone (shapes, Reshape targets, ConstantOfShape, Cast...): such nodes are evaluated at
 * import. Weights stored as external data are read from the model's folder. Every node Kiln
 * cannot import is listed in one UNSUPPORTED error before anything is imported.
 */
import type { Dim } from "../../dsl/ir/dims.ts";
import type { Network } from "../../dsl/network.ts";
import { KilnError } from "../../errors.ts";
import type { Logger } from "../../runtime/logger.ts";
import { importModel } from "./_import.ts";
import { decodeModel, type OnnxModel } from "./_model.ts";
import type { OnnxDiagnostic } from "./_registry.ts";
import type { OnnxTensorData } from "./tensor.ts";
import type { Msg } from "./_schema.ts";
import "./_ops_math.ts";
import "./_ops_nn.ts";
import "./_ops_reduce.ts";
import "./_ops_rnn.ts";
import "./_ops_shape.ts";
import "./_ops_slice.ts";

export type { OnnxDiagnostic } from "./_registry.ts";
export { IMPORTERS as ONNX_IMPORTERS } from "./_registry.ts";
export { IR_VERSIONS, OPSETS } from "./_import.ts";
export { kilnDTypeOf, onnxHostArray, type OnnxTensorData, readOnnxTensor } from "./tensor.ts";

export interface ParseOnnxOptions {
  /**
   * The folder external weights are read from: the model's own folder by default; needed when
   * the model is given as bytes and keeps its weights outside.
   */
  baseDir?: string;
  /**
   * Dims that replace the declared dims of graph inputs, e.g. `{ x: [1, 3, 224, 224] }` (as
   * trtexec's --shapes): fixes symbolic dims; a leading "N" makes the batch dim.
   */
  inputShapes?: Record<string, readonly Dim[]>;
  /**
   * Graph inputs bound to fixed values, which become constants instead of bindings (as
   * shape inputs must be known when the engine is built: a Reshape's shape, a Slice's
   * starts, a TopK's K...). Values as `readOnnxTensor` returns them.
   */
  constantInputs?: Record<string, OnnxTensorData>;
  /** Receives the diagnostics (notes at info, warnings at warning). */
  logger?: Logger;
}

export interface ParseOnnxResult {
  network: Network;
  diagnostics: OnnxDiagnostic[];
}

/** Imports an ONNX model (a file path, or its bytes). */
export async function parseOnnx(
  source: string | Uint8Array,
  options: ParseOnnxOptions = {},
): Promise<ParseOnnxResult> {
  let bytes: Uint8Array, file: string, dir: string | undefined;
  if (source instanceof Uint8Array) {
    bytes = source;
    file = "<model>";
    dir = options.baseDir;
  } else if (typeof source === "string") {
    file = source;
    try {
      bytes = await Deno.readFile(source);
    } catch (e) {
      throw new KilnError(
        "IO_ERROR",
        `cannot read the ONNX model "${source}": ${e instanceof Error ? e.message : e}`,
        { file, cause: e },
      );
    }
    dir = options.baseDir ?? parentDir(source);
  } else {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `parseOnnx expects a file path or a Uint8Array, got ${
        source === null ? "null" : typeof source
      }`,
    );
  }
  const model = decodeModel(bytes, file);
  const files = dir === undefined ? undefined : await readExternalFiles(model, dir);
  const diagnostics: OnnxDiagnostic[] = [];
  const network = importModel(model, {
    external: files ? (location) => files.get(location)! : undefined,
    inputShapes: options.inputShapes,
    constantInputs: options.constantInputs,
    diagnostics,
  });
  if (options.logger) {
    for (const d of diagnostics) {
      if (d.severity === "warning") options.logger.warning(d.message);
      else options.logger.info(d.message);
    }
  }
  return { network, diagnostics };
}

function parentDir(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

/**
 * Every external-data file the model names, read once. A location must stay inside the
 * model's folder (no absolute paths, no "..") as ONNX's checker requires.
 */
async function readExternalFiles(model: OnnxModel, dir: string): Promise<Map<string, Uint8Array>> {
  const locations = new Set<string>();
  const visit = (t: Msg | undefined) => {
    if (t?.data_location !== 1) return;
    for (const e of (t.external_data ?? []) as Msg[]) {
      if (e.key === "location") locations.add(String(e.value));
    }
  };
  for (const t of model.initializers.values()) visit(t);
  for (const n of model.nodes) for (const a of n.attrs.values()) visit(a.t);
  const files = new Map<string, Uint8Array>();
  for (const location of locations) {
    const parts = location.split(/[\\/]/);
    if (location.startsWith("/") || /^[A-Za-z]:/.test(location) || parts.includes("..")) {
      throw new KilnError(
        "PARSE_ERROR",
        `${model.file}: external data location "${location}" leaves the model's folder`,
        { file: model.file },
      );
    }
    const path = `${dir}/${location}`;
    try {
      files.set(location, await Deno.readFile(path));
    } catch (e) {
      throw new KilnError(
        "IO_ERROR",
        `${model.file}: cannot read the external weights "${path}": ${
          e instanceof Error ? e.message : e
        }`,
        { file: path, cause: e },
      );
    }
  }
  return files;
}

/** Decodes a ModelProto's bytes without importing it (for tools that inspect models). */
export function decodeOnnxModel(bytes: Uint8Array, file = "<model>"): OnnxModel {
  return decodeModel(bytes, file);
}

export type { OnnxModel };
