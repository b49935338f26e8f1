/**
 * Builds a Kiln network from the layers of a prototxt: keeps the layers of the TEST phase, skips
 * data and training-only layers (with a note), checks every remaining layer before building
 * anything (all unsupported layers in one error), then runs each layer's importer in order.
 * A blob name always maps to the tensor of its last write (in-place layers such as a ReLU that
 * writes its bottom), as TensorRT documents for Caffe.
 */
import type protobuf from "protobufjs";
import { formatDims } from "../../dsl/ir/dims.ts";
import { Layer, Tensor } from "../../dsl/ir/graph.ts";
import { isLayerKind } from "../../dsl/layers/mod.ts";
import { Network } from "../../dsl/network.ts";
import { KilnError, type KilnProblem } from "../../errors.ts";
import type { TextMessage } from "./text_format.ts";
import {
  type CaffeDiagnostic,
  type CaffeLayer,
  DATA_TYPES,
  type ImportContext,
  IMPORTERS,
  paramReader,
  type RandomInit,
  TRAINING_ONLY_TYPES,
} from "./_registry.ts";
import { inputDims } from "./_layers_tensor.ts";
import "./_layers_pointwise.ts";
import "./_layers_spatial.ts";

/** A blob of a model file: its dims as stored and its values. */
export interface CaffeWeights {
  dims: number[];
  data: Float32Array;
}

/** Layers Kiln does not implement, supplied by the caller (NvCaffeParser's IPluginFactory). */
export interface CaffePluginFactory {
  /** Whether the layer of that name is built by `createPlugin`. */
  isPlugin(layerName: string): boolean;
  /**
   * Builds the layer: returns its output tensors (one per top) or a Kiln layer whose outputs
   * they are. `weights` are the layer's blobs in the model file ([] without one).
   */
  createPlugin(
    layerName: string,
    weights: CaffeWeights[],
    info: { network: Network; inputs: Tensor[]; params: TextMessage; type: string },
  ): Tensor | Tensor[] | Layer;
}

export interface BuildRequest {
  file: string;
  layers: CaffeLayer[];
  /** NetParameter.state's level and stages (the phase is always TEST). */
  state: { level: number; stage: string[] };
  layerType: protobuf.Type;
  /** Blobs of the model file by layer name; undefined for random weights. */
  weights?: Map<string, CaffeWeights[]>;
  seed: number;
  pluginFactory?: CaffePluginFactory;
  /** Dims of blobs that skipped data layers would produce, to make them network inputs. */
  inputShapes?: Record<string, number[]>;
  diagnostics: CaffeDiagnostic[];
}

export function buildNetwork(req: BuildRequest): { network: Network; blobs: Map<string, Tensor> } {
  const { file, diagnostics } = req;
  const where = (l: CaffeLayer) =>
    `${file}${l.line ? `:${l.line}` : ""}: layer "${l.name}" (${l.type})`;
  const note = (
    l: CaffeLayer | undefined,
    message: string,
    severity: "note" | "warning" = "note",
  ) => diagnostics.push({ severity, message, layer: l?.name, line: l?.line });

  // 1. The layers of the TEST phase, without data and training-only layers.
  const skippedTops = new Map<string, CaffeLayer>();
  const active: CaffeLayer[] = [];
  for (const l of req.layers) {
    const why = !inTestPhase(l, req.state, () => where(l))
      ? "not in the TEST phase"
      : DATA_TYPES.has(l.type)
      ? "a data layer (feed its blobs as network inputs)"
      : TRAINING_ONLY_TYPES.has(l.type)
      ? "used in training only"
      : undefined;
    if (why) {
      note(l, `layer "${l.name}" (${l.type}) skipped: ${why}`);
      for (const t of l.top) skippedTops.set(t, l);
      const scale = (l.msg.transform_param as TextMessage | undefined)?.scale;
      if (DATA_TYPES.has(l.type) && scale !== undefined && why.startsWith("a data")) {
        note(
          l,
          `layer "${l.name}": its transform_param (scale ${scale}) is not applied: feed preprocessed data`,
        );
      }
    } else {
      active.push(l);
    }
  }

  // 2. Every layer Kiln cannot build, at once.
  const isPlugin = (l: CaffeLayer) => {
    if (l.fromHeader || !req.pluginFactory) return false;
    try {
      return req.pluginFactory.isPlugin(l.name) === true;
    } catch (e) {
      throw relocate(e, l, `${where(l)}: the plugin factory's isPlugin threw`, file, true);
    }
  };
  const problems: (KilnProblem & { what: string })[] = [];
  for (const l of active) {
    if (isPlugin(l)) continue;
    const imp = IMPORTERS.get(l.type);
    const whats = !imp ? [`unsupported layer type "${l.type}"`] : [
      ...imp.kinds.filter((k) => !isLayerKind(k)).map((k) =>
        `needs the Kiln layer kind ${k}, absent from this build`
      ),
      ...(imp.check?.(l, paramReader(req.layerType, l)) ?? []),
    ];
    for (const what of whats) {
      problems.push({
        what,
        file,
        line: l.line,
        column: l.column,
        layer: l.name,
        message: `${where(l)}: ${what}`,
      });
    }
  }
  if (problems.length) {
    const layerCount = new Set(problems.map((p) => p.layer)).size;
    const list = problems.map((p) => `  line ${p.line ?? "?"}: layer "${p.layer}": ${p.what}`).join(
      "\n",
    );
    throw new KilnError(
      "UNSUPPORTED",
      `${file}: ${layerCount} layer${layerCount > 1 ? "s" : ""} cannot be imported:\n${list}\n` +
        `Supported types: ${
          [...IMPORTERS.keys()].sort().join(", ")
        }; a pluginFactory can build others.`,
      {
        file,
        line: problems[0].line,
        column: problems[0].column,
        layer: problems[0].layer,
        problems,
      },
    );
  }

  // 3. BatchNorm layers whose output only a per-channel Scale reads: the two become one layer.
  const foldPairs = findBatchNormScalePairs(active, req.layerType, isPlugin);

  // 4. Import, layer by layer.
  const network = new Network();
  const blobs = new Map<string, Tensor>();
  const kilnLayerOf = new Map<CaffeLayer, Layer>();
  let warnedRandom = false;
  for (const l of active) {
    const inputs = l.bottom.map((b) => blobs.get(b) ?? missingBottom(l, b));
    const modelBlobs = req.weights?.get(l.name) ?? [];
    let outs: Tensor[];
    const fail = (message: string, code: KilnError["code"] = "INVALID_ATTRIBUTE"): never => {
      throw located(
        new KilnError(code, `${where(l)}: ${message}`, {
          file,
          line: l.line,
          column: l.column,
          layer: l.name,
        }),
      );
    };
    try {
      if (isPlugin(l)) {
        let r: ReturnType<CaffePluginFactory["createPlugin"]>;
        try {
          r = req.pluginFactory!.createPlugin(l.name, modelBlobs, {
            network,
            inputs,
            params: l.msg,
            type: l.type,
          });
        } catch (e) {
          throw relocate(e, l, `${where(l)}: the plugin factory's createPlugin threw`, file, true);
        }
        outs = r instanceof Layer
          ? r.outputs
          : r instanceof Tensor
          ? [r]
          : Array.isArray(r)
          ? r
          : fail(
            `the plugin factory returned ${String(r)}; expected a Tensor, Tensor[] or Layer`,
          );
        if (outs.some((t) => !(t instanceof Tensor) || t.graph !== network)) {
          fail("the plugin factory returned something that is not a tensor of this network");
        }
      } else {
        const foldedScale = foldPairs.get(l);
        const bnOfScale = [...foldPairs].find(([, s]) => s === l)?.[0];
        const ctx: ImportContext = {
          net: network,
          layer: l,
          inputs,
          param: paramReader(req.layerType, l),
          given: (name, field) => {
            const m = l.msg[name];
            return m !== undefined && typeof m === "object" && field in (m as TextMessage);
          },
          blobCount: modelBlobs.length,
          blob: (index, dims, init) => {
            const want = dims.reduce((a, b) => a * b, 1);
            if (!(Number.isSafeInteger(want) && want <= MAX_BLOB_VALUES)) {
              fail(
                `blob ${index} ${
                  formatDims(dims)
                } would hold ${want} values; Kiln takes up to 2^28`,
                "UNSUPPORTED",
              );
            }
            if (!req.weights) {
              if (!warnedRandom) {
                note(undefined, `no model file: random weights (seed ${req.seed})`, "warning");
                warnedRandom = true;
              }
              return randomBlob(dims, init, req.seed, l.name, index);
            }
            const b = modelBlobs[index];
            if (!b) {
              fail(
                `the model has ${modelBlobs.length} blob(s) for this layer; blob ${index} ${
                  formatDims(dims)
                } is missing`,
              );
            }
            if (b.data.length !== want) {
              fail(
                `blob ${index} of the model is ${formatDims(b.dims)} (${b.data.length} values); ` +
                  `expected ${formatDims(dims)} (${want} values)`,
                "SHAPE_MISMATCH",
              );
            }
            return b.data;
          },
          add: (kind, ins, args, name) => {
            const layer = network.addLayer(kind, ins, { ...args, name: name ?? l.name });
            layer.sources = [l.name];
            return layer;
          },
          foldedScale,
          foldInto: bnOfScale ? kilnLayerOf.get(bnOfScale) : undefined,
          note: (m) => note(l, `layer "${l.name}": ${m}`),
          fail,
        };
        const r = IMPORTERS.get(l.type)!.import(ctx);
        outs = Array.isArray(r) ? r : [r];
        if (bnOfScale) {
          note(
            l,
            `BatchNorm "${bnOfScale.name}" and Scale "${l.name}" folded into one Scale layer`,
          );
          if (bnOfScale.top[0] !== l.top[0]) blobs.delete(bnOfScale.top[0]);
        }
      }
    } catch (e) {
      throw relocate(e, l, where(l), file);
    }
    if (outs.length !== l.top.length) {
      throw new KilnError(
        "INVALID_NETWORK",
        `${where(l)}: has ${l.top.length} top(s) but produces ${outs.length} output(s)`,
        { file, line: l.line, layer: l.name },
      );
    }
    const producer = outs[0]?.producer;
    if (producer) kilnLayerOf.set(l, producer);
    l.top.forEach((t, i) => blobs.set(t, outs[i]));
  }

  function missingBottom(l: CaffeLayer, b: string): Tensor {
    const skipped = skippedTops.get(b);
    const shape = req.inputShapes?.[b];
    if (skipped && shape) {
      const t = network.input(b, inputDims(shape));
      blobs.set(b, t);
      note(
        skipped,
        `blob "${b}" of skipped layer "${skipped.name}" is the network input ${formatDims(t.dims)}`,
      );
      return t;
    }
    const why = skipped
      ? `it comes from the skipped ${skipped.type} layer "${skipped.name}"${
        skipped.line ? ` (line ${skipped.line})` : ""
      }: declare it with parseCaffe's inputShapes option, e.g. inputShapes: { "${b}": [1, 3, 224, 224] }`
      : "no earlier layer or input produces it";
    throw new KilnError("INVALID_NETWORK", `${where(l)}: bottom "${b}" is undefined: ${why}`, {
      file,
      line: l.line,
      column: l.column,
      layer: l.name,
      tensor: b,
    });
  }

  for (const b of Object.keys(req.inputShapes ?? {})) {
    if (!blobs.has(b)) note(undefined, `inputShapes names "${b}", which no layer reads: ignored`);
  }
  nameTensorsAfterBlobs(network, blobs);
  return { network, blobs };
}

/** The most values one blob may hold (1 GiB of float32): beyond, a model is surely corrupt. */
const MAX_BLOB_VALUES = 2 ** 28;

const LOCATED = new WeakSet<Error>();
function located(e: KilnError): KilnError {
  LOCATED.add(e);
  return e;
}

/** An error thrown while importing a layer, with the layer's file, line and name. */
function relocate(
  e: unknown,
  l: CaffeLayer,
  where: string,
  file: string,
  foreign = false,
): KilnError {
  if (e instanceof KilnError && LOCATED.has(e)) return e;
  const opts = { file, line: l.line, column: l.column, layer: l.name, cause: e };
  if (e instanceof KilnError) {
    return located(
      new KilnError(e.code, `${where}: ${e.message}`, {
        ...opts,
        tensor: e.tensor,
        problems: e.problems,
      }),
    );
  }
  // Foreign: thrown by the caller's plugin factory, not by Kiln.
  return located(
    new KilnError(
      foreign ? "INVALID_ARGUMENT" : "INTERNAL",
      `${where}: ${foreign ? "" : "import failed: "}${e instanceof Error ? e.message : e}`,
      opts,
    ),
  );
}

/** Caffe's NetStateRule check for the TEST phase: include rules (any meets) or exclude rules. */
function inTestPhase(l: CaffeLayer, state: BuildRequest["state"], where: () => string): boolean {
  const include = (l.msg.include ?? []) as TextMessage[];
  const exclude = (l.msg.exclude ?? []) as TextMessage[];
  if (include.length && exclude.length) {
    throw new KilnError(
      "PARSE_ERROR",
      `${where()}: give include rules or exclude rules, not both`,
      {
        line: l.line,
        layer: l.name,
      },
    );
  }
  const meets = (r: TextMessage) =>
    (r.phase === undefined || r.phase === "TEST") &&
    (r.min_level === undefined || state.level >= (r.min_level as number)) &&
    (r.max_level === undefined || state.level <= (r.max_level as number)) &&
    ((r.stage ?? []) as string[]).every((s) => state.stage.includes(s)) &&
    !((r.not_stage ?? []) as string[]).some((s) => state.stage.includes(s));
  return include.length ? include.some(meets) : !exclude.some(meets);
}

/**
 * BatchNorm → Scale pairs to fold: the BatchNorm's output is read by that Scale alone (a
 * per-channel Scale over axis 1 with one bottom), before anything rewrites the blob.
 */
function findBatchNormScalePairs(
  layers: CaffeLayer[],
  layerType: protobuf.Type,
  isPlugin: (l: CaffeLayer) => boolean,
): Map<CaffeLayer, CaffeLayer> {
  const pairs = new Map<CaffeLayer, CaffeLayer>();
  layers.forEach((bn, i) => {
    if (bn.type !== "BatchNorm" || bn.top.length !== 1 || isPlugin(bn)) return;
    const blob = bn.top[0];
    const readers: CaffeLayer[] = [];
    for (const l of layers.slice(i + 1)) {
      if (l.bottom.includes(blob)) readers.push(l);
      if (l.top.includes(blob)) break;
    }
    const s = readers[0];
    if (readers.length !== 1 || s.type !== "Scale" || s.bottom.length !== 1 || isPlugin(s)) return;
    const p = paramReader(layerType, s)("scale_param");
    if (p.axis === 1 && p.num_axes === 1) pairs.set(bn, s);
  });
  return pairs;
}

/**
 * Names each blob's final tensor after the blob (network inputs keep theirs); earlier versions of
 * an in-place blob that held the name become `blob@layer`.
 */
function nameTensorsAfterBlobs(net: Network, blobs: Map<string, Tensor>): void {
  const claim = new Map<Tensor, string>();
  const inputNames = new Set(net.inputs.map((t) => t.name));
  for (const [blob, t] of blobs) {
    if (!claim.has(t) && !t.isNetworkInput && !inputNames.has(blob)) claim.set(t, blob);
  }
  const wanted = new Set(claim.values());
  for (const t of [...net.tensors.values()]) {
    if (wanted.has(t.name) && claim.get(t) !== t.name) {
      net.renameTensor(t, net.uniqueTensorName(`${t.name}@${t.producer?.name ?? "input"}`));
    }
  }
  for (const [t, blob] of claim) net.renameTensor(t, blob);
}

/** Seeded random values for a blob when there is no model file (a stream per layer and blob). */
function randomBlob(
  dims: readonly number[],
  init: RandomInit,
  seed: number,
  layer: string,
  index: number,
): Float32Array {
  const n = dims.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  if (init === "one") return out.fill(1);
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const ch of `${layer}#${index}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  const next = mulberry32(h);
  const fanIn = dims.length > 1 ? n / dims[0] : n;
  const [lo, hi] = init === "weights"
    ? [-Math.sqrt(3 / fanIn), Math.sqrt(3 / fanIn)]
    : init === "positive"
    ? [0.5, 1.5]
    : [-0.1, 0.1];
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * next();
  return out;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
