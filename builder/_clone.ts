/** A private copy of a network for the passes to rewrite (weights are shared: passes never mutate them in place). */
import { Layer, NetworkGraph, Tensor } from "../dsl/ir/graph.ts";

/** Copies `net`, placing its layers in `order` (a topological order from verify) when given. */
export function cloneNetwork(
  net: NetworkGraph,
  order: readonly Layer[] = net.layers,
): NetworkGraph {
  const out = new NetworkGraph();
  const map = new Map<Tensor, Tensor>();
  const copy = (t: Tensor): Tensor => {
    let c = map.get(t);
    if (!c) {
      c = new Tensor(out, t.name, [...t.dims], t.dtype);
      c.dynamicRange = t.dynamicRange ? { ...t.dynamicRange } : undefined;
      map.set(t, c);
      out.registerTensor(c);
    }
    return c;
  };
  for (const t of net.inputs) out.inputs.push(copy(t));
  for (const l of order) {
    const c = new Layer(
      out,
      l.name,
      l.kind,
      structuredClone(l.attrs),
      new Map(l.weights),
      l.inputs.map(copy),
    );
    c.outputs = l.outputs.map(copy);
    for (const t of c.outputs) t.producer = c;
    c.sources = [...l.sources];
    c.precision = l.precision;
    for (const [i, d] of l.outputTypes) c.outputTypes.set(i, d);
    out.registerLayer(c);
  }
  for (const t of net.outputs) out.outputs.push(copy(t));
  return out;
}
