/**
 * verify(): checks a whole network before any pass and reports every problem, each naming
 * the layer and tensor: dangling inputs, cycles, missing outputs, attribute, shape, dtype and
 * weight mismatches. Unused layers are reported as warnings.
 */
import { KilnError, type KilnProblem } from "../../errors.ts";
import { formatDims, N, sameDims } from "./dims.ts";
import type { Layer, NetworkGraph, Tensor } from "./graph.ts";
import { parseAttrs, type ShapeContext } from "../layers/_define.ts";
import { type AnyDef, checkWeights, inferShapeOf } from "../layers/_check.ts";
import { isLayerKind, LAYERS } from "../layers/mod.ts";

export interface VerifyReport {
  problems: KilnProblem[];
  warnings: KilnProblem[];
  /** Layers in an order where every layer runs after the producers of its inputs. */
  order: Layer[];
}

export function verifyNetwork(
  net: NetworkGraph,
  options: { throwOnError?: boolean } = {},
): VerifyReport {
  const problems: KilnProblem[] = [];
  const warnings: KilnProblem[] = [];
  const inLayers = new Set(net.layers);

  for (const t of net.inputs) {
    if (net.tensors.get(t.name) !== t) {
      problems.push({ tensor: t.name, message: `network input "${t.name}" is not registered` });
    }
    if (
      !t.dims.every((d, i) => (d === N && i === 0) || (Number.isInteger(d) && (d as number) > 0))
    ) {
      problems.push({
        tensor: t.name,
        message: `network input "${t.name}" has invalid dims ${formatDims(t.dims)}`,
      });
    }
  }

  // Dangling inputs: a tensor no layer of this network writes and that is not a network input.
  const dangling = new Set<Layer>();
  const names = new Set<string>();
  for (const layer of net.layers) {
    if (names.has(layer.name)) {
      problems.push({ layer: layer.name, message: `layer name "${layer.name}" is used twice` });
    }
    names.add(layer.name);
    layer.inputs.forEach((t, i) => {
      const known = t && t.graph === net && net.tensors.get(t.name) === t;
      const produced = known && (t.producer ? inLayers.has(t.producer) : net.inputs.includes(t));
      if (!produced) {
        dangling.add(layer);
        problems.push({
          layer: layer.name,
          tensor: t?.name,
          message:
            `layer "${layer.name}" input ${i} ("${t?.name}") is dangling: no layer of this network produces it and it is not a network input`,
        });
      }
    });
  }

  // Topological order (Kahn); what remains sits on a cycle.
  const order = topologicalOrder(net, dangling);
  if (order.cyclic.length) {
    problems.push({
      layer: order.cyclic[0].name,
      message: `the network has a cycle through layers ${
        order.cyclic.map((l) => `"${l.name}"`).join(", ")
      }`,
    });
  }

  // Attributes, shapes, dtypes and weights of each layer, in order.
  for (const layer of order.order) {
    if (!isLayerKind(layer.kind)) {
      problems.push({
        layer: layer.name,
        message: `layer "${layer.name}" has unknown kind "${layer.kind}"`,
      });
      continue;
    }
    const def = LAYERS[layer.kind] as AnyDef;
    try {
      const attrs = parseAttrs(def, layer.name, layer.attrs);
      const ctx: ShapeContext<unknown> = {
        layer: layer.name,
        inputs: layer.inputs.map((t) => ({ dims: t.dims, dtype: t.dtype })),
        attrs,
        weights: layer.weights,
      };
      if (layer.inputs.length < def.inputs.min || layer.inputs.length > def.inputs.max) {
        problems.push({
          layer: layer.name,
          message:
            `layer "${layer.name}" has ${layer.inputs.length} inputs; ${def.kind} takes ${def.inputs.min}..${def.inputs.max}`,
        });
        continue;
      }
      const outs = inferShapeOf(def, ctx, layer.inputs);
      if (outs.length !== layer.outputs.length) {
        problems.push({
          layer: layer.name,
          message:
            `layer "${layer.name}" has ${layer.outputs.length} outputs; its attributes give ${outs.length}`,
        });
      }
      outs.forEach((o, i) => {
        const t = layer.outputs[i];
        if (!t) return;
        if (!sameDims(o.dims, t.dims) || o.dtype !== t.dtype) {
          problems.push({
            layer: layer.name,
            tensor: t.name,
            message: `layer "${layer.name}" output "${t.name}" is ${
              formatDims(t.dims)
            } ${t.dtype} but its inputs and attributes give ${formatDims(o.dims)} ${o.dtype}`,
          });
        }
      });
      for (const msg of checkWeights(def, ctx, layer.weights, false)) {
        problems.push({ layer: layer.name, message: `layer "${layer.name}": ${msg}` });
      }
    } catch (e) {
      if (!(e instanceof KilnError)) throw e;
      problems.push({ layer: layer.name, tensor: e.tensor, message: e.message });
    }
  }

  // Outputs.
  if (net.outputs.length === 0) {
    problems.push({
      message: "no tensor is marked as an output (call network.markOutput(tensor))",
    });
  }
  for (const t of net.outputs) {
    if (net.tensors.get(t.name) !== t) {
      problems.push({
        tensor: t.name,
        message: `output "${t.name}" is not a tensor of this network`,
      });
    }
  }
  const read = new Set<Tensor>();
  for (const l of net.layers) for (const t of l.inputs) read.add(t);
  for (const l of net.layers) {
    if (l.outputs.length && l.outputs.every((t) => !read.has(t) && !net.outputs.includes(t))) {
      warnings.push({
        layer: l.name,
        tensor: l.outputs[0].name,
        message:
          `layer "${l.name}": its outputs are neither read nor marked as outputs (unused layer)`,
      });
    }
  }

  if (options.throwOnError && problems.length) {
    const list = problems.map((p, i) => `  ${i + 1}. ${p.message}`).join("\n");
    throw new KilnError(
      "INVALID_NETWORK",
      `the network has ${problems.length} problem${problems.length > 1 ? "s" : ""}:\n${list}`,
      { problems, layer: problems[0].layer, tensor: problems[0].tensor },
    );
  }
  return { problems, warnings, order: order.order };
}

function topologicalOrder(
  net: NetworkGraph,
  skip: Set<Layer>,
): { order: Layer[]; cyclic: Layer[] } {
  const layers = net.layers.filter((l) => !skip.has(l));
  const pending = new Map<Layer, number>();
  const readers = new Map<Layer, Layer[]>();
  const member = new Set(layers);
  for (const l of layers) {
    let deps = 0;
    for (const t of l.inputs) {
      const p = t.producer;
      if (p && member.has(p)) {
        deps++;
        const r = readers.get(p) ?? [];
        r.push(l);
        readers.set(p, r);
      }
    }
    pending.set(l, deps);
  }
  const order: Layer[] = [];
  const ready = layers.filter((l) => pending.get(l) === 0);
  while (ready.length) {
    const l = ready.shift()!;
    order.push(l);
    for (const r of readers.get(l) ?? []) {
      const n = pending.get(r)! - 1;
      pending.set(r, n);
      if (n === 0) ready.push(r);
    }
  }
  const cyclic = layers.filter((l) => pending.get(l)! > 0);
  return { order, cyclic };
}
