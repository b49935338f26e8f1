/**
 * compareWithFp32: the FAQ's layer-by-layer FP16/INT8 debugging, automated. Every layer's float
 * output is marked as a network output, the network is built twice (in the reduced precision
 * asked for, and in FP32) and run on the same inputs, and each layer's output is compared.
 *
 * Errors are relative to the layer output's magnitude (near-zero elements would make an
 * elementwise ratio meaningless): maxRelError = max|r − f| / max|f|, meanRelError =
 * mean|r − f| / mean|f|, r the reduced-precision output and f the FP32 one.
 *
 * Marking outputs changes the build as in TensorRT: marked tensors are not fused away, and an
 * INT8 layer writes its marked output in FP32 (network outputs stay FP32) while its INT8 readers
 * quantize it with the same scale, so what they read is unchanged.
 */
import type { HostArray } from "../dsl/ir/dtype.ts";
import { isBatched, itemVolume } from "../dsl/ir/dims.ts";
import { Layer, NetworkGraph, type Precision, Tensor } from "../dsl/ir/graph.ts";
import type { Weights } from "../dsl/ir/weights.ts";
import { KilnError } from "../errors.ts";
import { readPlan } from "../plan/mod.ts";
import { Engine } from "../runtime/engine.ts";
import { Logger } from "../runtime/logger.ts";
import { cloneNetwork } from "./_clone.ts";
import { type BuildConfig, buildEngine } from "./build.ts";
import { calibrate } from "./quant/calibrate.ts";

export interface LayerError {
  /** The layer's name (in the network given, or the engine's fused name). */
  layer: string;
  kind: string;
  /** The precision the reduced-precision build ran it in. */
  precision: Precision;
  /** The output compared (the layer's first float output). */
  tensor: string;
  maxRelError: number;
  meanRelError: number;
  maxAbsError: number;
}

export interface CompareOptions extends BuildConfig {
  /** The batch of `inputs` (inferred from their lengths when omitted). */
  batchSize?: number;
}

/**
 * Per-layer error of a reduced-precision build against FP32. Given a network, `options` says
 * how to build it (fp16, int8, calibrator, strictTypes, ...); given an engine, its own layer
 * precisions and scales are rebuilt with every output marked (its FP16 layers' weights are the
 * plan's, already rounded to half, for both builds).
 */
export async function compareWithFp32(
  source: Engine | NetworkGraph,
  inputs: Record<string, HostArray>,
  options: CompareOptions = {},
): Promise<LayerError[]> {
  const logger = options.logger ?? new Logger("error");
  const { batchSize, ...config } = options;
  let reduced: NetworkGraph, fp32: NetworkGraph, reducedConfig: BuildConfig;
  if (source instanceof Engine) {
    reduced = networkOfEngine(source, true);
    fp32 = networkOfEngine(source, false);
    reducedConfig = { ...config, strictTypes: true, disablePasses: "all", calibrator: undefined };
  } else if (source instanceof NetworkGraph) {
    reduced = cloneNetwork(source);
    fp32 = cloneNetwork(source);
    for (const l of fp32.layers) {
      l.precision = undefined;
      l.outputTypes.clear();
    }
    reducedConfig = { ...config, calibrator: undefined };
    if (config.calibrator && config.int8) {
      // Calibrated on the network as given (its cache key), applied as ranges where none is set.
      const r = await calibrate(source, config.calibrator, {
        logger,
        maxBatchSize: config.maxBatchSize,
      });
      for (const [name, scale] of r.scales) {
        const t = reduced.tensors.get(name);
        if (t && !t.dynamicRange && scale > 0) t.setDynamicRange(-scale * 127, scale * 127);
      }
    }
  } else {
    throw new KilnError("INVALID_ARGUMENT", "compareWithFp32 expects an Engine or a network");
  }
  const marked = markEveryOutput(reduced);
  markEveryOutput(fp32);
  const batch = batchSize ?? inferBatch(reduced, inputs);
  const maxBatchSize = Math.max(config.maxBatchSize ?? 1, batch);
  const run = async (net: NetworkGraph, c: BuildConfig) => {
    using engine = await buildEngine(net, { ...c, maxBatchSize, logger });
    using ctx = engine.createContext();
    const out = await ctx.execute(inputs, { batchSize: batch });
    return { out, layers: engine.describe().layers };
  };
  const r = await run(reduced, reducedConfig);
  const f = await run(fp32, {
    device: config.device,
    disablePasses: config.disablePasses,
    workspaceBytes: config.workspaceBytes,
  });
  return marked.map(({ layer, tensor }) => {
    const a = r.out[tensor] as Float32Array, b = f.out[tensor] as Float32Array;
    const built = r.layers.find((l) => l.name === layer.name) ??
      r.layers.find((l) => l.sources.includes(layer.name) && l.kind !== "Reformat");
    return {
      layer: layer.name,
      kind: layer.kind,
      precision: (built?.precision ?? "fp32") as Precision,
      tensor,
      ...errors(a, b),
    };
  });
}

/** Marks each layer's first float output as a network output; returns the pairs in order. */
function markEveryOutput(net: NetworkGraph): { layer: Layer; tensor: string }[] {
  const out: { layer: Layer; tensor: string }[] = [];
  for (const l of net.layers) {
    const t = l.outputs.find((o) => o.dtype === "float32");
    if (!t) continue;
    if (!net.outputs.includes(t)) net.outputs.push(t);
    out.push({ layer: l, tensor: t.name });
  }
  return out;
}

function errors(a: Float32Array, b: Float32Array) {
  let maxAbs = 0, sumAbs = 0, maxRef = 0, sumRef = 0;
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    maxAbs = Math.max(maxAbs, d);
    sumAbs += d;
    maxRef = Math.max(maxRef, Math.abs(b[i]));
    sumRef += Math.abs(b[i]);
  }
  const ratio = (x: number, y: number) => (y > 0 ? x / y : x > 0 ? Infinity : 0);
  return {
    maxRelError: ratio(maxAbs, maxRef),
    meanRelError: ratio(sumAbs, sumRef),
    maxAbsError: maxAbs,
  };
}

function inferBatch(net: NetworkGraph, inputs: Record<string, HostArray>): number {
  for (const t of net.inputs) {
    const data = inputs[t.name];
    if (data && isBatched(t.dims)) return Math.max(1, Math.floor(data.length / itemVolume(t.dims)));
  }
  return 1;
}

/**
 * The engine's optimized network rebuilt from its plan: its layers (Reformat layers left out,
 * their readers reading the reformatted tensor), weights, and INT8 scales as dynamic ranges;
 * with `keepPrecisions` each layer forced to the precision the engine ran it in.
 */
function networkOfEngine(engine: Engine, keepPrecisions: boolean): NetworkGraph {
  const { manifest: m, weights } = readPlan(engine.serialize());
  const net = new NetworkGraph();
  const tensors = new Map<number, Tensor>();
  const alias = new Map<number, number>();
  const resolve = (i: number): number => (alias.has(i) ? resolve(alias.get(i)!) : i);
  const tensor = (i: number): Tensor => {
    i = resolve(i);
    let t = tensors.get(i);
    if (!t) {
      const d = m.tensors[i];
      t = new Tensor(net, d.name, [...d.dims], d.dtype);
      if (keepPrecisions && d.scale !== undefined) t.setDynamicRange(-d.scale * 127, d.scale * 127);
      tensors.set(i, t);
      net.registerTensor(t);
    }
    return t;
  };
  for (const b of m.bindings) if (b.isInput) net.inputs.push(tensor(b.tensor));
  for (const l of m.layers) {
    if (l.kind === "Reformat") {
      alias.set(l.outputs[0], l.inputs[0]);
      continue;
    }
    const ws = new Map<string, Weights>();
    for (const [slot, w] of Object.entries(l.weights)) {
      const bytes = weights.subarray(w.offset);
      const ctor =
        { float32: Float32Array, int32: Int32Array, int8: Int8Array, float16: Uint16Array }[
          w.dtype
        ];
      const values = new ctor(bytes.slice(0, w.count * ctor.BYTES_PER_ELEMENT).buffer);
      ws.set(slot, { dtype: w.dtype, values });
    }
    const layer = new Layer(
      net,
      l.name,
      l.kind,
      structuredClone(l.attrs),
      ws,
      l.inputs.map(tensor),
    );
    layer.outputs = l.outputs.map(tensor);
    for (const t of layer.outputs) t.producer = layer;
    layer.sources = [...l.sources];
    if (keepPrecisions) layer.precision = l.precision;
    net.registerLayer(layer);
  }
  for (const b of m.bindings) if (!b.isInput) net.outputs.push(tensor(b.tensor));
  return net;
}
