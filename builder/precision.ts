/**
 * Precision assignment: which precision (FP32, FP16, INT8) each layer of the optimized network
 * runs in, and the reformat layers between precisions, as TensorRT's builder does.
 *
 *  - Forced: `layer.precision` is taken when the backend has a kernel for it (and, for INT8, the
 *    inputs have scales). Otherwise `strictTypes` makes it a build error; without it the layer
 *    falls back to the best allowed precision with a warning.
 *  - Free: with `fp16`/`int8` enabled a layer may run in any allowed precision; the cheapest by the
 *    backend's cost model is taken, counting the reformats its inputs would need (ties go to the
 *    higher precision). The CPU runs every precision at about the same speed (FP32 arithmetic
 *    throughout), so its model ranks by a GPU-like proxy (`CPU_COST_MODEL`); a backend with
 *    measured tactic times supplies its own `PrecisionCostModel`.
 *  - INT8 needs the scale (amax / 127) of every tensor it reads as INT8: a user range
 *    (`tensor.setDynamicRange`) first, then the calibrator's, then, for a Constant's output, its
 *    values. A layer without one runs in a higher precision and the log says which tensor
 *    lacked it; with the layer forced to INT8 under strictTypes it is a build error naming it.
 *  - Formats: a layer writes its precision's format, except the INT8 kernels, which requantize,
 *    round to half or dequantize in their epilogue to what the readers need. Network inputs and
 *    outputs stay FP32 unless `layer.setOutputType` says otherwise; a reader needing another
 *    format gets a Reformat layer (one per tensor and format), visible in the plan, the profiler
 *    and `engine.describe()`.
 *  - FP16 layers get their float weights rounded to half; INT8 layers keep FP32 weights, which
 *    the kernel quantizes per output channel (runtime/cpu/_quant.ts has the exact rules).
 */
import { itemVolume } from "../dsl/ir/dims.ts";
import { float16BitsToFloat32, float32ToFloat16Bits } from "../dsl/ir/dtype.ts";
import { Layer, type NetworkGraph, type Precision, Tensor } from "../dsl/ir/graph.ts";
import { KilnError } from "../errors.ts";
import { CPU_INT8_KERNELS } from "../runtime/cpu/int8.ts";
import { CUDA_REDUCED_PRECISION_KINDS, cudaFp16Mode } from "../runtime/cuda/precision.ts";
import type { Manifest, PlanDevice } from "../plan/mod.ts";
import type { Logger } from "../runtime/logger.ts";

/** How a backend prices a layer in a precision; the GPU tactic timer can fill it with times. */
export interface PrecisionCostModel {
  /** Named in the build log. */
  name: string;
  /** Relative cost of `layer` in `precision`, or undefined when there is no such kernel. */
  layerCost(layer: Layer, precision: Precision): number | undefined;
  /** Relative cost of converting `tensor` between formats (same units as layerCost). */
  reformatCost(tensor: Tensor, from: Precision, to: Precision): number;
}

const BYTES: Record<Precision, number> = { fp32: 4, fp16: 2, int8: 1 };
/** Relative time per multiply-add: FP16 and INT8 tensor cores at 2× and 4× FP32's rate. */
const MAC_COST: Record<Precision, number> = { fp32: 1, fp16: 0.5, int8: 0.25 };

/** Which inputs an INT8 kernel reads as INT8 (the others, if any, in FP32). */
export const INT8_INPUTS: Record<string, readonly number[]> = {
  Convolution: [0],
  FullyConnected: [0],
  MatrixMultiply: [0, 1],
};

const isFloat = (t: Tensor) => t.dtype === "float32";

/** Multiply-adds per batch item of the GEMM-like kinds (0 for the memory-bound rest). */
export function macsPerItem(l: Layer): number {
  const out = l.outputs[0] ? itemVolume(l.outputs[0].dims) : 0;
  const w = l.weights.get("weights")?.values.length ?? 0;
  switch (l.kind) {
    case "Convolution": {
      const k = l.attrs.kernel as [number, number] | undefined;
      const groups = (l.attrs.groups as number | undefined) ?? 1;
      const c = l.inputs[0].dims[1];
      return typeof c === "number" && k ? (out * c * k[0] * k[1]) / groups : 0;
    }
    case "FullyConnected":
      return out * (w / ((l.attrs.outputs as number) || 1));
    case "MatrixMultiply": {
      const a = l.inputs[0].dims;
      const k = l.attrs.transposeA ? a[a.length - 2] : a[a.length - 1];
      return typeof k === "number" ? out * k : 0;
    }
    default:
      return 0;
  }
}

/**
 * The CPU's stand-in for measured times: multiply-adds at each precision's tensor-core rate plus
 * the bytes moved (inputs and outputs) at its width. A lone FP16 elementwise layer between FP32
 * ones thus costs more with its two reformats than it saves, as on a GPU.
 */
export const CPU_COST_MODEL: PrecisionCostModel = {
  name: "cpu (GPU-like proxy: MACs at 1/2/4x and bytes moved; no measured times)",
  layerCost(layer, p) {
    if (p === "int8" && !Object.hasOwn(CPU_INT8_KERNELS, layer.kind)) return undefined;
    if (p !== "fp32" && (layer.kind === "Plugin" || !layer.outputs.some(isFloat))) {
      return undefined;
    }
    const moved = [...layer.inputs, ...layer.outputs].filter(isFloat)
      .reduce((a, t) => a + itemVolume(t.dims), 0);
    return macsPerItem(layer) * MAC_COST[p] + (moved * BYTES[p]) / 4;
  },
  reformatCost(tensor, from, to) {
    return (itemVolume(tensor.dims) * (BYTES[from] + BYTES[to])) / 4;
  },
};

/** A backend with FP32 kernels only (until its reduced-precision kernels are registered). */
export function fp32OnlyCostModel(backendName: string): PrecisionCostModel {
  return {
    name: `${backendName} (FP32 kernels only)`,
    layerCost: (layer, p) => (p === "fp32" ? macsPerItem(layer) : undefined),
    reformatCost: () => 0,
  };
}

/** Times of the CUDA backend's kernels (H100 class), per batch item at an assumed batch of 64. */
const CUDA_RATES = {
  /**
   * ns per multiply-add: FP32 (tuned tactics, cuDNN among them); the WMMA FP16 and IMMA INT8
   * kernels. Set from the H100 measurement of bench/precision.ts (GoogLeNet b128: FP32 6.79k/s,
   * FP16 4.35k/s, INT8 3.39k/s; bench/RESULTS.md): today's tensor-core kernels move FP32-sized data
   * through a single-stage pipeline and lose, so only forced layers run in FP16/INT8 on the GPU.
   */
  macNs: { fp32: 1e-4, fp16: 1.6e-4, int8: 2e-4 } as Record<Precision, number>,
  /** ns per byte of HBM traffic (every format keeps its float32 slot on the GPU too). */
  byteNs: 4e-4,
  /** A launch inside the CUDA graph, spread over the batch. */
  launchNs: 30,
};

/**
 * The CUDA backend's static model (no measured times yet: builder/tune times FP32 tactics only):
 * multiply-adds at each kernel's rate, bytes moved, a launch per layer; INT8 adds the launch that
 * quantizes the weights per run. FP16 per runtime/cuda/precision.ts's cudaFp16Mode: tensor cores;
 * "exact" kinds (the FP32 kernel, whose outputs of half values are half values) a hair under FP32,
 * so that ties keep a chain in FP16 instead of counting a reformat that would not be there;
 * "rounded" kinds FP32 plus a rounding launch. A Reformat is one launch reading and writing float32.
 */
export const CUDA_COST_MODEL: PrecisionCostModel = {
  name: "cuda (static model: tensor-core MAC rates, bytes moved, launches; not measured)",
  layerCost(layer, p) {
    if (p === "int8" && !CUDA_REDUCED_PRECISION_KINDS.int8.has(layer.kind)) return undefined;
    if (p !== "fp32" && (layer.kind === "Plugin" || !layer.outputs.some(isFloat))) {
      return undefined;
    }
    const mode = p === "fp16" ? cudaFp16Mode(layer.kind, layer.attrs) : undefined;
    if (p === "fp16" && !mode) return undefined;
    const outputs = layer.outputs.filter(isFloat).reduce((a, t) => a + itemVolume(t.dims), 0);
    const moved = layer.inputs.filter(isFloat).reduce((a, t) => a + itemVolume(t.dims), outputs);
    const base = moved * 4 * CUDA_RATES.byteNs + CUDA_RATES.launchNs;
    const macs = macsPerItem(layer);
    if (mode === "exact") return (macs * CUDA_RATES.macNs.fp32 + base) * 0.98;
    if (mode === "rounded") {
      return macs * CUDA_RATES.macNs.fp32 + base + CUDA_RATES.launchNs +
        outputs * 8 * CUDA_RATES.byteNs;
    }
    const weights = layer.weights.get("weights")?.values.length ?? 0;
    const quantizeWeights = p === "int8"
      ? CUDA_RATES.launchNs + (weights * 5 * CUDA_RATES.byteNs) / 64
      : 0;
    return macs * CUDA_RATES.macNs[p] + base + quantizeWeights;
  },
  reformatCost(tensor) {
    return CUDA_RATES.launchNs + itemVolume(tensor.dims) * 8 * CUDA_RATES.byteNs;
  },
};

/** Fused kinds that would hide FullyConnected layers (which have INT8 kernels) in one without. */
const FUSIONS_WITHOUT_INT8 = new Set(["FusedMlp"]);

/**
 * Whether a pass may create `kind` in this build: with INT8 enabled on a backend with INT8
 * kernels, not a fusion that would keep its GEMMs out of INT8 (the passes run before precisions
 * are chosen).
 */
export function fusionAllowed(
  kind: string,
  config: { int8?: boolean },
  device: PlanDevice,
): boolean {
  if (!config.int8 || device.kind !== "cpu") return true;
  return !(FUSIONS_WITHOUT_INT8.has(kind) && !Object.hasOwn(CPU_INT8_KERNELS, kind));
}

export interface PrecisionOptions {
  fp16: boolean;
  int8: boolean;
  strictTypes: boolean;
  /** INT8 steps (amax / 127) by tensor name from calibration; user ranges take precedence. */
  calibratedScales?: ReadonlyMap<string, number>;
  model: PrecisionCostModel;
  logger: Logger;
}

export interface TensorFormat {
  precision: Precision;
  scale?: number;
}

export interface LayerPrecision {
  layer: string;
  precision: Precision;
  reason: string;
}

export interface PrecisionResult {
  layers: LayerPrecision[];
  /** Storage format of every float tensor of the rewritten network. */
  formats: Map<Tensor, TensorFormat>;
  /** Every tensor's known INT8 step. */
  scales: Map<Tensor, number>;
  reformats: number;
}

const NAME: Record<Precision, string> = { fp32: "FP32", fp16: "FP16", int8: "INT8" };

/** Assigns precisions to `order` (topological) in place and inserts the reformat layers. */
export function assignPrecision(
  graph: NetworkGraph,
  order: readonly Layer[],
  o: PrecisionOptions,
): PrecisionResult {
  const scaleCache = new Map<Tensor, number | undefined>();
  const scaleOf = (t: Tensor) => {
    if (!scaleCache.has(t)) scaleCache.set(t, findScale(t, o.calibratedScales));
    return scaleCache.get(t);
  };
  const chosen = new Map<Layer, Precision>();
  const decisions: LayerPrecision[] = [];
  const missingRanges: { tensor: Tensor; layer: Layer }[] = [];
  /** The tensor whose missing range blocked the last INT8 check, if that was why. */
  let lastMissing: Tensor | undefined;

  /** Why `layer` cannot run in `p`, or undefined when it can. */
  const blocker = (layer: Layer, p: Precision): string | undefined => {
    lastMissing = undefined;
    if (o.model.layerCost(layer, p) === undefined) {
      return `the ${o.model.name.split(" ")[0]} backend has no ${NAME[p]} kernel for ${layer.kind}`;
    }
    if (p !== "int8") return undefined;
    if (layer.attrs.residual) return "INT8 kernels take no fused residual";
    for (const i of INT8_INPUTS[layer.kind] ?? []) {
      const t = layer.inputs[i];
      if (!isFloat(t)) return `input "${t.name}" is ${t.dtype}`;
      if (scaleOf(t) === undefined) {
        missingRanges.push({ tensor: t, layer });
        lastMissing = t;
        return `tensor "${t.name}" has no dynamic range`;
      }
    }
    return undefined;
  };
  /** Format a reader gets for free from the producer of `t` (INT8 kernels write any). */
  const writtenFree = (t: Tensor, need: Precision): boolean => {
    const p = t.producer ? chosen.get(t.producer) : undefined;
    return p === "int8" || (p ?? "fp32") === need;
  };
  // Who reads each tensor, and the precision each layer would take on its own cost alone: a
  // layer's choice counts the reformats its inputs need from their producers' choices and those
  // its readers would need given their own preferences (a one-step look-ahead, so that a chain
  // of FP16-capable layers is not kept in FP32 by the reformat at its start).
  const readersOf = new Map<Tensor, { layer: Layer; index: number }[]>();
  for (const l of order) {
    l.inputs.forEach((t, index) =>
      readersOf.set(t, [...(readersOf.get(t) ?? []), { layer: l, index }])
    );
  }
  const preferred = new Map<Layer, Precision>();
  for (const l of order) {
    let best: Precision = "fp32", bestCost = Infinity;
    const options: Precision[] = l.precision ? [l.precision] : ["fp32", "fp16", "int8"];
    for (const p of options) {
      if (p === "fp16" && !o.fp16 && !l.precision) continue;
      if (p === "int8" && !o.int8 && !l.precision) continue;
      const c = o.model.layerCost(l, p);
      if (c !== undefined && c < bestCost) [best, bestCost] = [p, c];
    }
    preferred.set(l, best);
  }
  const cost = (layer: Layer, p: Precision): number => {
    let c = o.model.layerCost(layer, p)!;
    layer.inputs.forEach((t, i) => {
      const need = inputNeed(layer, p, i);
      if (!need || writtenFree(t, need)) return;
      const from = t.producer ? chosen.get(t.producer) ?? "fp32" : "fp32";
      c += o.model.reformatCost(t, from, need);
    });
    if (p === "int8") return c; // the INT8 epilogue writes any format its readers need
    for (const t of layer.outputs) {
      if (!isFloat(t)) continue;
      const needs = new Set<Precision>();
      if (t.isNetworkOutput) needs.add("fp32");
      for (const r of readersOf.get(t) ?? []) {
        const need = inputNeed(r.layer, preferred.get(r.layer)!, r.index);
        if (need) needs.add(need);
      }
      for (const need of needs) if (need !== p) c += o.model.reformatCost(t, p, need);
    }
    return c;
  };

  for (const layer of order) {
    const allowed: Precision[] = ["fp32"];
    if (o.fp16) allowed.push("fp16");
    if (o.int8) allowed.push("int8");
    const notes: string[] = [];
    let pick: Precision | undefined, reason = "";
    const forced = layer.precision;
    if (forced) {
      const why = blocker(layer, forced);
      if (!why) {
        pick = forced;
        reason = `forced (layer.precision = "${forced}")`;
      } else if (o.strictTypes) {
        const missing = lastMissing;
        throw new KilnError(
          "UNSUPPORTED",
          `layer "${layer.name}" is forced to ${NAME[forced]} under strictTypes, but ${why}` +
            (missing ? ` (set it with tensor.setDynamicRange(min, max) or give a calibrator)` : ""),
          { layer: layer.name, tensor: missing?.name },
        );
      } else {
        o.logger.warning(
          `layer "${layer.name}": forced ${
            NAME[forced]
          } is not possible (${why}); it falls back (strictTypes would make this an error)`,
        );
        notes.push(`forced ${NAME[forced]} fell back: ${why}`);
      }
    }
    if (!pick) {
      const costs: string[] = [];
      let best = Infinity;
      for (const p of allowed) {
        if (p === forced) continue;
        const why = blocker(layer, p);
        if (why) {
          notes.push(`${NAME[p]} not possible: ${why}`);
          continue;
        }
        const c = cost(layer, p);
        costs.push(`${NAME[p]} ${fmtCost(c)}`);
        if (c < best) {
          best = c;
          pick = p;
        }
      }
      pick ??= "fp32";
      reason = allowed.length > 1
        ? `cheapest (${costs.join(", ")}; reformats included)`
        : "FP32 only (fp16/int8 not enabled)";
    }
    chosen.set(layer, pick);
    layer.precision = pick;
    decisions.push({
      layer: layer.name,
      precision: pick,
      reason: [reason, ...notes].join("; "),
    });
  }

  if (o.int8 && ![...chosen.values()].includes("int8") && missingRanges.length) {
    // Not one INT8 layer and neither a calibrator nor a single user range: a set-up mistake, not
    // a fallback to log quietly.
    const anyRange = (o.calibratedScales?.size ?? 0) > 0 ||
      [...graph.tensors.values()].some((t) => t.dynamicRange !== undefined);
    if (!anyRange) {
      const { tensor, layer } = missingRanges[0];
      throw new KilnError(
        "INVALID_ARGUMENT",
        `INT8 is enabled but tensor "${tensor.name}" (read by "${layer.name}") has no dynamic range, and no tensor has one: give a calibrator, call tensor.setDynamicRange(min, max), or build without int8`,
        { tensor: tensor.name, layer: layer.name },
      );
    }
  }
  for (const { tensor, layer } of missingRanges) {
    if (chosen.get(layer) !== "int8") {
      o.logger.warning(
        `no dynamic range for tensor "${tensor.name}": layer "${layer.name}" runs in ${
          NAME[chosen.get(layer)!]
        } instead of INT8`,
      );
    }
  }
  for (const d of decisions) {
    o.logger.info(`precision: ${d.layer}: ${NAME[d.precision]} — ${d.reason}`);
  }

  roundFp16Weights(order, chosen);
  const formats = new Map<Tensor, TensorFormat>();
  const reformats = insertReformats(graph, order, chosen, formats, scaleOf);
  const scales = new Map<Tensor, number>();
  for (const t of graph.tensors.values()) {
    const s = formats.get(t)?.scale ?? scaleOf(t);
    if (s !== undefined) scales.set(t, s);
  }
  if (reformats) o.logger.info(`precision: ${reformats} reformat layer(s) inserted`);
  return { layers: decisions, formats, scales, reformats };
}

/** The format input `i` of a layer in precision `p` must be read in (undefined: not a float). */
function inputNeed(layer: Layer, p: Precision, i: number): Precision | undefined {
  if (!isFloat(layer.inputs[i])) return undefined;
  if (p === "int8") return (INT8_INPUTS[layer.kind] ?? []).includes(i) ? "int8" : "fp32";
  return p;
}

/** The INT8 step of a tensor: user range, then calibration, then a Constant's own values. */
function findScale(t: Tensor, calibrated?: ReadonlyMap<string, number>): number | undefined {
  const r = t.dynamicRange;
  if (r) {
    const amax = Math.max(Math.abs(r.min), Math.abs(r.max));
    return amax > 0 ? Math.fround(amax / 127) : undefined;
  }
  const c = calibrated?.get(t.name);
  if (c !== undefined && Number.isFinite(c) && c > 0) return Math.fround(c);
  const p = t.producer;
  const w = p?.kind === "Constant" ? p.weights.get("values") : undefined;
  if (w?.dtype === "float32") {
    let amax = 0;
    for (const v of w.values as Float32Array) amax = Math.max(amax, Math.abs(v));
    if (amax > 0 && Number.isFinite(amax)) return Math.fround(amax / 127);
  }
  return undefined;
}

function roundFp16Weights(order: readonly Layer[], chosen: Map<Layer, Precision>): void {
  for (const l of order) {
    if (chosen.get(l) !== "fp16") continue;
    for (const [slot, w] of l.weights) {
      if (w.dtype !== "float32") continue;
      const v = new Float32Array(w.values as Float32Array);
      for (let i = 0; i < v.length; i++) v[i] = float16BitsToFloat32(float32ToFloat16Bits(v[i]));
      // The clone's own map: the caller's network keeps its FP32 weights.
      l.weights.set(slot, { dtype: "float32", values: v });
    }
  }
}

const OUTPUT_TYPE: Record<string, Precision> = { float32: "fp32", float16: "fp16", int8: "int8" };

/**
 * Decides each float tensor's format and rewires readers that need another one through Reformat
 * layers; returns how many were inserted.
 */
function insertReformats(
  graph: NetworkGraph,
  order: readonly Layer[],
  chosen: Map<Layer, Precision>,
  formats: Map<Tensor, TensorFormat>,
  scaleOf: (t: Tensor) => number | undefined,
): number {
  let count = 0;
  const readers = new Map<Tensor, { layer: Layer; index: number; need: Precision }[]>();
  for (const l of order) {
    l.inputs.forEach((t, index) => {
      const need = inputNeed(l, chosen.get(l)!, index);
      if (need) readers.set(t, [...(readers.get(t) ?? []), { layer: l, index, need }]);
    });
  }
  const setFormat = (t: Tensor, precision: Precision, scaleFrom: Tensor = t) => {
    let scale: number | undefined;
    if (precision === "int8") {
      scale = scaleOf(scaleFrom);
      if (scale === undefined) {
        throw new KilnError(
          "INVALID_ARGUMENT",
          `tensor "${t.name}" is INT8 but has no dynamic range (set one with tensor.setDynamicRange or give a calibrator)`,
          { tensor: t.name },
        );
      }
    }
    formats.set(t, { precision, scale });
  };
  const addReformat = (src: Tensor, to: Precision, dst?: Tensor, scaleFrom: Tensor = src) => {
    const out = dst ??
      new Tensor(graph, graph.uniqueTensorName(`${src.name}/${to}`), [...src.dims], src.dtype);
    if (!dst) graph.registerTensor(out);
    const scale = to === "int8" ? scaleOf(scaleFrom) : undefined;
    const name = graph.uniqueLayerName(`reformat ${src.name} to ${NAME[to]}`);
    const l = new Layer(graph, name, "Reformat", { to, scale }, new Map(), [src], [out]);
    if (scale === undefined) delete l.attrs.scale;
    l.precision = to;
    out.producer = l;
    graph.registerLayer(l);
    count++;
    setFormat(out, to, scaleFrom);
    return out;
  };
  /** The producer writes a new tensor in format `written`; a reformat then writes `t`. */
  const splitOutput = (t: Tensor, written: Precision, to: Precision) => {
    const producer = t.producer!;
    const inner = new Tensor(
      graph,
      graph.uniqueTensorName(`${t.name}/${written}`),
      [...t.dims],
      t.dtype,
      producer,
    );
    graph.registerTensor(inner);
    producer.outputs[producer.outputs.indexOf(t)] = inner;
    setFormat(inner, written, t);
    addReformat(inner, to, t, t);
    innerOf.set(t, inner);
  };
  /** A tensor whose producer writes `inner` in another format, a reformat then writing it. */
  const innerOf = new Map<Tensor, Tensor>();

  for (const t of graph.inputs) if (isFloat(t)) formats.set(t, { precision: "fp32" });
  for (const l of order) {
    const p = chosen.get(l)!;
    [...l.outputs].forEach((t, i) => {
      if (!isFloat(t)) return;
      const forcedType = l.outputTypes.get(i);
      const forced = forcedType ? OUTPUT_TYPE[forcedType] : undefined;
      const rs = readers.get(t) ?? [];
      let written: Precision;
      if (p === "int8") {
        // The INT8 epilogue writes whatever its readers need, for free.
        written = forced ??
          (t.isNetworkOutput
            ? "fp32"
            : rs.some((r) => r.need === "int8")
            ? "int8"
            : rs.length && rs.every((r) => r.need === "fp16")
            ? "fp16"
            : "fp32");
      } else {
        written = p;
      }
      const declared = forced ?? (t.isNetworkOutput ? "fp32" : written);
      if (t.isNetworkOutput && declared === "int8") {
        throw new KilnError(
          "INVALID_ARGUMENT",
          `network output "${t.name}" cannot be INT8 (outputs are float32 or float16)`,
          { layer: l.name, tensor: t.name },
        );
      }
      if (declared !== written) splitOutput(t, written, declared);
      else setFormat(t, written);
    });
  }
  // Readers needing another format than the stored one, one reformat per tensor and format.
  for (const [t, rs] of readers) {
    const have = formats.get(t)?.precision ?? "fp32";
    const made = new Map<Precision, Tensor>();
    // Readers of a split output that need the producer's own format read it before the reformat.
    const inner = innerOf.get(t);
    if (inner) made.set(formats.get(inner)!.precision, inner);
    for (const r of rs) {
      if (r.need === have) continue;
      let out = made.get(r.need);
      if (!out) {
        out = addReformat(t, r.need);
        made.set(r.need, out);
      }
      r.layer.inputs[r.index] = out;
    }
  }
  // A network output forced to float16 is handed over as float16 (binding dtype float16).
  for (const [i, t] of graph.outputs.entries()) {
    if (formats.get(t)?.precision !== "fp16") continue;
    const inner = new Tensor(
      graph,
      graph.uniqueTensorName(`${t.name}/fp16`),
      [...t.dims],
      t.dtype,
      t.producer,
    );
    graph.registerTensor(inner);
    const p = t.producer!;
    p.outputs[p.outputs.indexOf(t)] = inner;
    formats.set(inner, formats.get(t)!);
    formats.delete(t);
    const cast = new Layer(
      graph,
      graph.uniqueLayerName(`cast ${t.name} to float16`),
      "Identity",
      { dtype: "float16" },
      new Map(),
      [inner],
      [t],
    );
    cast.precision = "fp16";
    t.dtype = "float16";
    t.producer = cast;
    graph.registerLayer(cast);
    graph.outputs[i] = t;
    for (const r of readers.get(t) ?? []) {
      if (r.layer.inputs[r.index] === t) r.layer.inputs[r.index] = inner;
    }
  }
  return count;
}

function fmtCost(c: number): string {
  return c >= 1e6
    ? `${(c / 1e6).toFixed(2)}M`
    : c >= 1e3
    ? `${(c / 1e3).toFixed(1)}k`
    : c.toFixed(0);
}

/** What the manifest keeps about precisions (plan/manifest.ts, build.precision). */
export type PrecisionManifest = NonNullable<Manifest["build"]["precision"]>;

export interface PrecisionStage {
  result: PrecisionResult;
  manifest: PrecisionManifest;
}

/**
 * The build's precision stage: nothing to do (undefined, the plan stays as FP32 builds always
 * were) unless FP16 or INT8 is enabled or a layer forces a precision or an output type.
 */
export function choosePrecisions(
  graph: NetworkGraph,
  order: readonly Layer[],
  config: { fp16?: boolean; int8?: boolean; strictTypes?: boolean },
  ctx: {
    device: PlanDevice;
    logger: Logger;
    calibration?: { algorithm: string; scales: ReadonlyMap<string, number> };
  },
): PrecisionStage | undefined {
  const fp16 = !!config.fp16, int8 = !!config.int8, strictTypes = !!config.strictTypes;
  const forced = order.some((l) => l.precision !== undefined || l.outputTypes.size > 0);
  if (!fp16 && !int8 && !forced) return undefined;
  const model = ctx.device.kind === "cpu" ? CPU_COST_MODEL : CUDA_COST_MODEL;
  const anyRange = [...graph.tensors.values()].some((t) => t.dynamicRange !== undefined);
  const scalesFrom = ctx.calibration
    ? `calibrator (${ctx.calibration.algorithm})${anyRange ? " and dynamic ranges" : ""}`
    : anyRange
    ? "dynamic ranges"
    : undefined;
  if (int8) ctx.logger.info(`precision: INT8 scales from ${scalesFrom ?? "nowhere yet"}`);
  const result = assignPrecision(graph, order, {
    fp16,
    int8,
    strictTypes,
    calibratedScales: ctx.calibration?.scales,
    model,
    logger: ctx.logger,
  });
  return {
    result,
    manifest: { fp16, int8, strictTypes, scalesFrom, layers: result.layers },
  };
}

/** Writes tensor formats and scales (by tensor name) and the decisions into the manifest. */
export function recordPrecisions(
  manifest: Manifest,
  graph: NetworkGraph,
  stage: PrecisionStage,
): void {
  for (const t of manifest.tensors) {
    const g = graph.tensors.get(t.name);
    if (!g) continue;
    const f = stage.result.formats.get(g);
    if (f && f.precision !== "fp32") t.precision = f.precision;
    const s = stage.result.scales.get(g);
    if (s !== undefined) t.scale = s;
  }
  manifest.build.precision = stage.manifest;
}
