/**
 * The calibration engine: the user's network as it is (no pass, FP32), laid out as a plan and
 * loaded on the CPU backend. It does not go through buildEngine, which calibrates when asked for
 * INT8 and so imports this folder: the layout here is build.ts's, minus passes, views and
 * precisions, none of which the calibration network has.
 */
import type { Layer, NetworkGraph, Tensor } from "../../dsl/ir/graph.ts";
import { KilnError } from "../../errors.ts";
import { align, type Manifest, type WeightRef, writePlan } from "../../plan/mod.ts";
import { selectBackend } from "../../runtime/device.ts";
import { Engine } from "../../runtime/engine.ts";
import type { Logger } from "../../runtime/logger.ts";
import { planMemory } from "../memory.ts";

const BLOB_ALIGNMENT = 64;

/** Loads `net` (its layers in topological `order`) on the CPU, every layer in FP32. */
export async function loadFp32Engine(
  net: NetworkGraph,
  order: readonly Layer[],
  maxBatchSize: number,
  logger: Logger,
): Promise<Engine> {
  const backend = await selectBackend("cpu", logger);
  const missing = order.filter((l) => !backend.supports(l.kind));
  if (missing.length) {
    throw new KilnError(
      "UNSUPPORTED",
      `calibration runs on the CPU, which has no kernel for ${missing.length} layer(s): ${
        missing.map((l) => `"${l.name}" (${l.kind})`).join(", ")
      }`,
      { layer: missing[0].name },
    );
  }
  const index = new Map<Tensor, number>();
  const tensors: Manifest["tensors"] = [];
  const add = (t: Tensor): number => {
    if (!index.has(t)) {
      index.set(t, tensors.length);
      tensors.push({ name: t.name, dims: [...t.dims], dtype: t.dtype });
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
      refs[slot] = { dtype: w.dtype, offset: size, count: w.values.length };
      blobs.push({
        at: size,
        bytes: new Uint8Array(w.values.buffer, w.values.byteOffset, w.values.byteLength),
      });
      size += w.values.byteLength;
    }
    return {
      name: l.name,
      kind: l.kind,
      attrs: l.attrs,
      inputs: l.inputs.map(add),
      outputs: l.outputs.map(add),
      weights: refs,
      sources: [...l.sources],
      precision: "fp32" as const,
    };
  });
  const weights = new Uint8Array(align(size, BLOB_ALIGNMENT));
  for (const b of blobs) weights.set(b.bytes, b.at);
  const bindings: Manifest["bindings"] = [
    ...net.inputs.map((t) => ({ name: t.name, tensor: index.get(t)!, isInput: true })),
    ...net.outputs.map((t) => ({ name: t.name, tensor: add(t), isInput: false })),
  ];
  const manifest: Manifest = {
    maxBatchSize,
    tensors,
    bindings,
    layers,
    memory: planMemory(tensors, layers, bindings, maxBatchSize),
    build: { passes: [], workspaceBytes: 64 << 20 },
  };
  return Engine.load(writePlan(manifest, weights, backend.device), backend);
}
