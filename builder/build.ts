/**
 * buildEngine: verify the network, check that the device has a kernel for every layer, lay out
 * the plan (manifest + aligned weight section) and load it. The optimization passes, precision
 * assignment and tactic timing plug in between verification and layout.
 */
import type { Layer, NetworkGraph, Tensor } from "../dsl/ir/graph.ts";
import { verifyNetwork } from "../dsl/ir/verify.ts";
import { KilnError } from "../errors.ts";
import { align, type Manifest, type WeightRef, writePlan } from "../plan/mod.ts";
import type { Backend } from "../runtime/backend.ts";
import { type DeviceSpec, selectBackend } from "../runtime/device.ts";
import { Engine } from "../runtime/engine.ts";
import { Logger } from "../runtime/logger.ts";
import { planMemory } from "./memory.ts";
import { assignAliases } from "./aliases.ts";
import { cloneNetwork } from "./_clone.ts";
import { runPasses } from "./pass.ts";
import { PASSES } from "./passes/mod.ts";
import { type TacticSet, tuneTactics, validateTuneOptions } from "./tune/tune.ts";
import { calibrate } from "./quant/calibrate.ts";
import type { Int8Calibrator } from "./quant/calibrator.ts";
import { dropUnusableViews, viewOf } from "./passes/_views.ts";
import { choosePrecisions, fusionAllowed, recordPrecisions } from "./precision.ts";

export interface BuildConfig {
  /** The largest batch the engine will run (the symbolic batch's bound). Default 1. */
  maxBatchSize?: number;
  device?: DeviceSpec;
  /** Passes to skip by name (see builder/passes/mod.ts), or "all" for none but the required. */
  disablePasses?: readonly string[] | "all";
  /** Scratch memory a layer may use (tactic choice respects it). Default 64 MiB. */
  workspaceBytes?: number;
  logger?: Logger;
  /** Let layers run in FP16 where the backend's cost model finds it faster (builder/precision.ts). */
  fp16?: boolean;
  /** Let layers run in INT8; scales come from the calibrator, else from tensor dynamic ranges. */
  int8?: boolean;
  /** Forced precisions (`layer.precision`) are binding: one the backend cannot run is an error. */
  strictTypes?: boolean;
  /** Calibrates the INT8 scales on sample batches (builder/quant/calibrator.ts). */
  calibrator?: Int8Calibrator;
  /** Tactics the builder times per layer (builder/tune): "all" (default), "builtin" or "none". */
  tactics?: TacticSet;
  /** A timing cache file: tactic timings are read from and written to it (builder/tune/cache.ts). */
  timingCache?: string;
  /** Replay the timing cache's choices; time nothing (a layer missing from it is an error). */
  deterministic?: boolean;
}

const BLOB_ALIGNMENT = 64;

export async function buildEngine(
  network: NetworkGraph,
  config: BuildConfig = {},
): Promise<Engine> {
  const logger = config.logger ?? new Logger();
  const maxBatchSize = config.maxBatchSize ?? 1;
  if (!(Number.isInteger(maxBatchSize) && maxBatchSize >= 1)) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `maxBatchSize must be a positive integer, got ${maxBatchSize}`,
    );
  }
  const workspaceBytes = config.workspaceBytes ?? 64 << 20;
  if (!(Number.isInteger(workspaceBytes) && workspaceBytes >= 0)) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `workspaceBytes must be a non-negative integer, got ${workspaceBytes}`,
    );
  }
  validateTuneOptions(config);
  const report = verifyNetwork(network, { throwOnError: true });
  for (const w of report.warnings) logger.warning(w.message);
  const backend = await selectBackend(config.device ?? "auto", logger);
  checkKernels(report.order, backend);

  // The passes rewrite a private copy; the caller's network stays as it was.
  const graph = cloneNetwork(network, report.order);
  const passes = runPasses(
    PASSES,
    {
      network: graph,
      logger,
      supports: (k) => backend.supports(k) && fusionAllowed(k, config, backend.device),
    },
    config.disablePasses,
  );
  const optimized = verifyNetwork(graph);
  if (optimized.problems.length) {
    throw new KilnError(
      "INTERNAL",
      `the optimized network is invalid (a pass is wrong; build with disablePasses: "all" to work around it): ${
        optimized.problems.map((p) => p.message).join("; ")
      }`,
    );
  }
  const precision = choosePrecisions(graph, optimized.order, config, {
    device: backend.device,
    logger,
    calibration: await calibrateFor(network, config, logger, maxBatchSize),
  });
  const order = precision ? verifyNetwork(graph, { throwOnError: true }).order : optimized.order;
  if (precision) checkKernels(order, backend);
  for (const d of dropUnusableViews(graph)) logger.info(`views: ${d}`);
  const { manifest, weights } = layoutPlan(order, graph, maxBatchSize, workspaceBytes);
  if (precision) recordPrecisions(manifest, graph, precision);
  for (const a of assignAliases(manifest)) logger.info(`aliases: ${a}`);
  manifest.build.passes = passes.map((p) => ({
    name: p.pass,
    layersBefore: p.layersBefore,
    layersAfter: p.layersAfter,
    changes: p.changes,
  }));
  await tuneTactics(manifest, weights, backend, {
    tactics: config.tactics ?? "all",
    workspaceBytes,
    timingCache: config.timingCache,
    deterministic: config.deterministic ?? false,
    logger,
  });
  const bytes = writePlan(manifest, weights, backend.device);
  const mem = manifest.memory;
  logger.info(
    `memory plan: activations ${
      kib(mem.arenaBytes)
    } KiB at batch ${maxBatchSize} (one buffer per tensor: ${kib(mem.naiveBytes)} KiB), weights ${
      kib(weights.length)
    } KiB, workspace ${kib(workspaceBytes)} KiB`,
  );
  logger.info(
    `built engine for ${backend.device.name}: ${manifest.layers.length} layers, ${manifest.bindings.length} bindings, ` +
      `${(weights.length / 1024).toFixed(1)} KiB of weights, plan ${
        (bytes.length / 1024).toFixed(1)
      } KiB`,
  );
  return Engine.load(bytes, backend);
}

/** INT8 scales from the calibrator when one is given and INT8 is enabled. */
async function calibrateFor(
  network: NetworkGraph,
  config: BuildConfig,
  logger: Logger,
  maxBatchSize: number,
): Promise<{ algorithm: string; scales: ReadonlyMap<string, number> } | undefined> {
  if (!config.calibrator) return undefined;
  if (!config.int8) {
    logger.warning("a calibrator was given but int8 is not enabled: it is not used");
    return undefined;
  }
  return await calibrate(network, config.calibrator, { logger, maxBatchSize });
}

/** Every layer without a kernel on the device, in one error. */
function checkKernels(layers: Layer[], backend: Backend): void {
  const missing = layers.filter((l) => !backend.supports(l.kind));
  if (missing.length) {
    throw new KilnError(
      "UNSUPPORTED",
      `${backend.device.name} has no kernel for ${missing.length} layer(s): ` +
        missing.map((l) => `"${l.name}" (${l.kind})`).join(", "),
      { layer: missing[0].name },
    );
  }
}

function layoutPlan(
  order: Layer[],
  net: NetworkGraph,
  maxBatchSize: number,
  workspaceBytes: number,
): { manifest: Manifest; weights: Uint8Array } {
  const index = new Map<Tensor, number>();
  const tensors: Manifest["tensors"] = [];
  const add = (t: Tensor): number => {
    if (!index.has(t)) {
      const v = viewOf(t);
      const view = v ? { of: add(v.of), channelOffset: v.channelOffset } : undefined;
      index.set(t, tensors.length);
      tensors.push({ name: t.name, dims: [...t.dims], dtype: t.dtype, ...(view ? { view } : {}) });
    }
    return index.get(t)!;
  };
  net.inputs.forEach(add);
  let size = 0;
  const blobs: { at: number; bytes: Uint8Array }[] = [];
  const layers: Manifest["layers"] = order.map((l) => {
    const refs: Record<string, WeightRef> = {};
    for (const [slot, w] of l.weights) {
      size = align(size, BLOB_ALIGNMENT);
      const bytes = new Uint8Array(w.values.buffer, w.values.byteOffset, w.values.byteLength);
      refs[slot] = { dtype: w.dtype, offset: size, count: w.values.length };
      blobs.push({ at: size, bytes });
      size += bytes.length;
    }
    return {
      name: l.name,
      kind: l.kind,
      attrs: l.attrs,
      inputs: l.inputs.map(add),
      outputs: l.outputs.map(add),
      weights: refs,
      sources: [...l.sources],
      precision: l.precision ?? "fp32",
    };
  });
  const weights = new Uint8Array(align(size, BLOB_ALIGNMENT));
  for (const b of blobs) weights.set(b.bytes, b.at);
  const bindings: Manifest["bindings"] = [
    ...net.inputs.map((t) => ({ name: t.name, tensor: index.get(t)!, isInput: true })),
    ...net.outputs.map((t) => ({ name: t.name, tensor: add(t), isInput: false })),
  ];
  return {
    manifest: {
      maxBatchSize,
      tensors,
      bindings,
      layers,
      memory: planMemory(tensors, layers, bindings, maxBatchSize),
      build: { passes: [], workspaceBytes },
    },
    weights,
  };
}

function kib(bytes: number): string {
  return (bytes / 1024).toFixed(1);
}
