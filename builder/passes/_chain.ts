/** Replacing a chain of layers with one fused layer (shared by the chain-fusion passes). */
import { Layer, type NetworkGraph, type Tensor } from "../../dsl/ir/graph.ts";
import type { Weights } from "../../dsl/ir/weights.ts";

/**
 * Replaces `chain` (each layer the single reader of the one before) with one layer of `kind`
 * that reads `inputs` and writes the last layer's output tensor, so names and bindings
 * downstream are unchanged. It is named after the chain ("fc1 + relu1 + fc2"), lists every
 * source layer, and takes the last layer's place: everything it reads is ready there.
 */
export function replaceChain(
  net: NetworkGraph,
  chain: readonly Layer[],
  kind: string,
  attrs: Record<string, unknown>,
  weights: Map<string, Weights>,
  inputs: Tensor[],
): Layer {
  const last = chain[chain.length - 1];
  const out = last.outputs[0];
  const after = net.layers[net.layers.indexOf(last) + 1];
  for (const l of chain) {
    net.removeLayer(l);
    if (l !== last) { for (const t of l.outputs) net.tensors.delete(t.name); }
  }
  const fused = new Layer(
    net,
    net.uniqueLayerName(chain.map((l) => l.name).join(" + ")),
    kind,
    attrs,
    weights,
    inputs,
    [out],
  );
  fused.sources = chain.flatMap((l) => l.sources);
  out.producer = fused;
  net.registerLayer(fused);
  net.layers.pop();
  net.layers.splice(after ? net.layers.indexOf(after) : net.layers.length, 0, fused);
  return fused;
}

/** The single layer reading `t`, when `t` has exactly one reader and is not a network output. */
export function soleReader(net: NetworkGraph, t: Tensor): Layer | undefined {
  if (net.outputs.includes(t)) return undefined;
  let reader: Layer | undefined;
  for (const l of net.layers) {
    if (!l.inputs.includes(t)) continue;
    // A layer reading t twice (x·x) counts as two reads.
    if (reader || l.inputs.indexOf(t) !== l.inputs.lastIndexOf(t)) return undefined;
    reader = l;
  }
  return reader;
}
