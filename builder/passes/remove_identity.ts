import type { Pass } from "../pass.ts";
import { rewireReaders } from "./_rewrite.ts";

/** Removes Identity layers that do not convert (Caffe's Dropout/Split become these). */
export const removeIdentity: Pass = {
  name: "removeIdentity",
  description: "remove identity layers that copy without converting",
  level: 1,
  requires: [],
  run({ network }) {
    const changes: string[] = [];
    for (const l of [...network.layers]) {
      if (l.kind !== "Identity") continue;
      const x = l.inputs[0], y = l.outputs[0];
      if (y.dtype !== x.dtype) continue;
      if (network.outputs.includes(y)) {
        // The output binding keeps its name: the producer of x writes it directly, unless x is
        // itself a binding (then the copy is what makes the two bindings distinct).
        if (!x.producer || network.outputs.includes(x)) continue;
        rewireReaders(network, y, x);
        network.removeLayer(l);
        network.tensors.delete(y.name);
        const name = y.name;
        network.outputs[network.outputs.indexOf(y)] = x;
        network.renameTensor(x, name);
      } else {
        rewireReaders(network, y, x);
        network.removeLayer(l);
        network.tensors.delete(y.name);
      }
      changes.push(`removed identity "${l.name}"`);
    }
    return changes;
  },
};
