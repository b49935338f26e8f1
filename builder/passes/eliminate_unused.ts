import type { Layer } from "../../dsl/ir/graph.ts";
import type { Pass } from "../pass.ts";

/** Removes layers that no marked output depends on (and constants that feed nothing). */
export const eliminateUnused: Pass = {
  name: "eliminateUnused",
  description: "remove layers whose outputs no network output depends on",
  level: 1,
  requires: [],
  run({ network }) {
    const needed = new Set<Layer>();
    const stack = network.outputs.map((t) => t.producer).filter((l): l is Layer => !!l);
    while (stack.length) {
      const l = stack.pop()!;
      if (needed.has(l)) continue;
      needed.add(l);
      for (const t of l.inputs) if (t.producer) stack.push(t.producer);
    }
    const dead = network.layers.filter((l) => !needed.has(l));
    for (const l of dead) {
      network.removeLayer(l);
      for (const t of l.outputs) network.tensors.delete(t.name);
    }
    return dead.map((l) => `removed ${l.kind} "${l.name}": nothing downstream uses its output`);
  },
};
