/**
 * Constant folding: a layer whose inputs are all constants is evaluated once at build time with
 * the CPU reference kernel and replaced by a Constant holding its result (ONNX shape arithmetic,
 * weights transposed by a Shuffle, a bias computed from two constants...).
 */
import { type HostArray, newHostArray } from "../../dsl/ir/dtype.ts";
import { Layer } from "../../dsl/ir/graph.ts";
import type { Weights } from "../../dsl/ir/weights.ts";
import { CPU_KERNELS } from "../../runtime/cpu/mod.ts";
import type { Pass } from "../pass.ts";

/** Layers worth keeping even with constant inputs (nothing to gain, or stateful). */
const KEEP = new Set(["Constant", "Plugin"]);

export const foldConstants: Pass = {
  name: "foldConstants",
  description: "evaluate layers whose inputs are all constants at build time",
  level: 1,
  requires: [],
  run({ network }) {
    const changes: string[] = [];
    for (const layer of [...network.layers]) {
      if (KEEP.has(layer.kind) || layer.inputs.length === 0) continue;
      const producers = layer.inputs.map((t) => t.producer);
      if (!producers.every((p) => p?.kind === "Constant")) continue;
      const kernel = CPU_KERNELS[layer.kind];
      if (!kernel) continue;
      // A Constant holds float32 or int32 values of concrete dims.
      if (
        layer.outputs.some((t) =>
          t.dims.some((d) => typeof d !== "number") ||
          (t.dtype !== "float32" && t.dtype !== "int32")
        )
      ) continue;
      const inputs = layer.inputs.map((t) => ({
        data: t.producer!.weights.get("values")!.values,
        dims: t.dims as number[],
      }));
      const outputs = layer.outputs.map((t) => ({
        data: newHostArray(t.dtype, (t.dims as number[]).reduce((a, b) => a * b, 1)),
        dims: t.dims as number[],
      }));
      const weights: Record<string, HostArray> = {};
      for (const [slot, w] of layer.weights) weights[slot] = w.values;
      kernel({ layer: layer.name, attrs: layer.attrs, weights, inputs, outputs });
      // Each output becomes a Constant layer producing the same tensor (names and readers unchanged).
      const at = network.layers.indexOf(layer);
      network.removeLayer(layer);
      layer.outputs.forEach((t, i) => {
        const values: Weights = { dtype: t.dtype, values: outputs[i].data };
        const c = new Layer(
          network,
          network.uniqueLayerName(
            `${layer.name}${layer.outputs.length > 1 ? `:${i}` : ""} (folded)`,
          ),
          "Constant",
          { dims: [...t.dims], dtype: t.dtype },
          new Map([["values", values]]),
          [],
          [t],
        );
        c.sources = [...layer.sources];
        t.producer = c;
        network.registerLayer(c);
        network.layers.pop();
        network.layers.splice(at + i, 0, c);
      });
      changes.push(
        `evaluated ${layer.kind} "${layer.name}" at build time (its inputs are constants)`,
      );
    }
    return changes;
  },
};
