/**
 * Concat elision: the producers of a Concatenation along the channel axis (dim 1) write straight
 * into their slices of its output, and the Concatenation copies nothing. Each input becomes a
 * view of the output (plan/views.ts): it owns no memory, its batch items lie the output's item
 * size apart, and the memory plan keeps the output live from its first producer on.
 *
 * All inputs or none: every input must be written by a kernel that honours an output view
 * (VIEW_WRITERS: Convolution with its epilogue, Pooling, Padding), be read by the concatenation
 * alone (once), not be a network input or output, and start at an aligned byte. Otherwise the
 * concatenation keeps its copy.
 */
import type { Layer, NetworkGraph, Tensor } from "../../dsl/ir/graph.ts";
import { VIEW_WRITERS, viewProblem } from "../../plan/views.ts";
import type { Pass } from "../pass.ts";
import { consumersOf } from "./_rewrite.ts";
import { setView, viewOf } from "./_views.ts";

/** Why input `t` cannot be written in place at `offset`, or undefined when it can. */
function inputProblem(
  net: NetworkGraph,
  concat: Layer,
  t: Tensor,
  offset: number,
): string | undefined {
  const p = t.producer;
  if (!p) return `"${t.name}" is a network input`;
  if (!VIEW_WRITERS.has(p.kind) || p.outputs.length !== 1) {
    return `"${t.name}" is written by a ${p.kind} layer, whose kernels cannot write a slice`;
  }
  if (net.outputs.includes(t)) return `"${t.name}" is a network output`;
  if (viewOf(t)) return `"${t.name}" is already a view`;
  const readers = consumersOf(net, t);
  if (readers.length !== 1 || concat.inputs.indexOf(t) !== concat.inputs.lastIndexOf(t)) {
    return `"${t.name}" has other readers`;
  }
  return viewProblem(t, concat.outputs[0], offset);
}

function tryElide(net: NetworkGraph, concat: Layer): string | undefined {
  if (concat.kind !== "Concatenation" || concat.outputs.length !== 1) return;
  const out = concat.outputs[0];
  const rank = out.dims.length;
  const axis = concat.attrs.axis as number;
  if (rank < 2 || (axis < 0 ? axis + rank : axis) !== 1 || viewOf(out)) return;
  let offset = 0;
  for (const t of concat.inputs) {
    const why = inputProblem(net, concat, t, offset);
    if (why) return `kept the copy of concatenation "${concat.name}": ${why}`;
    offset += t.dims[1] as number;
  }
  offset = 0;
  for (const t of concat.inputs) {
    setView(t, out, offset);
    offset += t.dims[1] as number;
  }
  return `concatenation "${concat.name}": its ${concat.inputs.length} inputs (${
    concat.inputs.map((t) => `"${t.producer!.name}"`).join(", ")
  }) are written in place into their channel slices of "${out.name}"; it copies nothing`;
}

export const elideConcat: Pass = {
  name: "elideConcat",
  description: "let the producers of a channel concatenation write into its output (no copy)",
  level: 1,
  requires: ["fuseEpilogue"],
  run({ network }) {
    return network.layers.flatMap((l) => tryElide(network, l) ?? []);
  },
};
