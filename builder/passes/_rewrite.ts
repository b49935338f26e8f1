/** Graph-rewriting helpers shared by the passes. */
import type { Layer, NetworkGraph, Tensor } from "../../dsl/ir/graph.ts";

export function consumersOf(net: NetworkGraph, t: Tensor): Layer[] {
  return net.layers.filter((l) => l.inputs.includes(t));
}

/** True when `t` is read by exactly one layer and is not a network output. */
export function hasSingleReader(net: NetworkGraph, t: Tensor): boolean {
  return !net.outputs.includes(t) && consumersOf(net, t).length === 1;
}

/** Makes every reader of `from` read `to` instead. */
export function rewireReaders(net: NetworkGraph, from: Tensor, to: Tensor): void {
  for (const l of net.layers) l.inputs = l.inputs.map((t) => (t === from ? to : t));
}

/**
 * Merges `absorbed` into `host`: the host takes over the absorbed layer's output tensor (so
 * names and bindings downstream are unchanged), its name becomes "host + absorbed" and its
 * sources list both, and the absorbed layer is removed.
 */
export function absorbLayer(net: NetworkGraph, host: Layer, absorbed: Layer): void {
  const out = absorbed.outputs[0];
  net.tensors.delete(host.outputs[0].name);
  host.outputs[0] = out;
  out.producer = host;
  // The host moves to the absorbed layer's place: everything either of them reads is ready there.
  net.layers.splice(net.layers.indexOf(host), 1);
  net.layers.splice(net.layers.indexOf(absorbed), 1, host);
  net.removeLayer(absorbed);
  net.renameLayer(host, net.uniqueLayerName(`${host.name} + ${absorbed.name}`));
  host.sources = [...host.sources, ...absorbed.sources];
}

export const GEMM_KINDS = new Set([
  "Convolution",
  "Deconvolution",
  "FullyConnected",
  "MatrixMultiply",
]);
