/**
 * Alias assignment (plan/aliases.ts says what an alias is), run on the laid-out manifest once
 * precisions are recorded: a Constant's output becomes its own weights and a reshape-only
 * Shuffle's output its input's bytes, so neither layer runs nor owns arena bytes. Then the
 * memory plan is redone without them.
 *
 * A tensor keeps its copy when it is a binding (a network output is copied out of the arena; a
 * loop's feedback targets are input bindings, written between steps), when it or the reshaped
 * tensor is a view (plan/views.ts: strided), or when the producer changes the values: a
 * reduced-precision Constant or output, a Shuffle whose input and output precisions differ.
 */
import type { Manifest } from "../plan/mod.ts";
import { aliasRoot, isReshapeOnly, type TensorAlias } from "../plan/aliases.ts";
import { planMemory } from "./memory.ts";

/** Marks the aliases, replans memory; returns one line per alias, in words. */
export function assignAliases(m: Manifest): string[] {
  const t = m.tensors;
  const bound = new Set(m.bindings.map((b) => b.tensor));
  const changes: string[] = [];
  const set = (i: number, a: TensorAlias, what: string) => {
    t[i].alias = a;
    changes.push(what);
  };
  m.layers.forEach((l, li) => {
    if (l.outputs.length !== 1) return;
    const o = l.outputs[0], out = t[o];
    if (bound.has(o) || out.view || out.alias) return;
    if (l.kind === "Constant" && l.inputs.length === 0) {
      const w = l.weights.values;
      if (!w || w.dtype !== out.dtype || l.precision !== "fp32" || out.precision) return;
      set(o, { constant: li }, `"${out.name}" is the weights of Constant "${l.name}"`);
    } else if (l.kind === "Shuffle" && l.inputs.length === 1 && isReshapeOnly(l.attrs)) {
      const i = l.inputs[0], input = t[i];
      if (input.view || input.dtype !== out.dtype || input.precision !== out.precision) return;
      set(o, aliasRoot(t, i), `"${out.name}" is "${input.name}" reshaped by "${l.name}"`);
    }
  });
  if (changes.length) m.memory = planMemory(t, m.layers, m.bindings, m.maxBatchSize);
  return changes;
}
