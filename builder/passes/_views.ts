/**
 * Tensor views while the passes run (plan/views.ts says what a view is). The network IR has no
 * field for them, so the passes that create views record them here and the plan layout
 * (builder/build.ts) writes them into the manifest.
 */
import type { NetworkGraph, Tensor } from "../../dsl/ir/graph.ts";
import { VIEW_READERS, VIEW_WRITERS } from "../../plan/views.ts";

export interface GraphView {
  of: Tensor;
  channelOffset: number;
}

const views = new WeakMap<Tensor, GraphView>();

/** The view `t` is, if the passes made it one. */
export function viewOf(t: Tensor): GraphView | undefined {
  return views.get(t);
}

export function setView(t: Tensor, of: Tensor, channelOffset: number): void {
  views.set(t, { of, channelOffset });
}

/**
 * Drops the views that layers added after the passes cannot honour (the precision stage's
 * Reformat layers, say): a fused-branch slice whose readers are not all VIEW_READERS reading it
 * as input 0 (its crop copies again), and every input view of a concatenation that is no longer
 * a no-op: an input not a view in place, written by a kind outside VIEW_WRITERS, or read by
 * another layer (the concatenation copies again). Returns one line per dropped view.
 */
export function dropUnusableViews(net: NetworkGraph): string[] {
  const dropped: string[] = [];
  const readersOf = (t: Tensor) => net.layers.filter((l) => l.inputs.includes(t));
  const drop = (t: Tensor, why: string) => {
    if (views.delete(t)) dropped.push(`"${t.name}" is no longer a view: ${why}`);
  };
  const concatInPlace = (parent: Tensor): boolean => {
    const c = parent.producer;
    if (c?.kind !== "Concatenation") return false;
    let at = 0;
    for (const t of c.inputs) {
      const v = views.get(t);
      if (!v || v.of !== parent || v.channelOffset !== at || !t.producer) return false;
      if (!VIEW_WRITERS.has(t.producer.kind)) return false;
      const readers = readersOf(t);
      if (readers.length !== 1 || c.inputs.indexOf(t) !== c.inputs.lastIndexOf(t)) return false;
      at += t.dims[1] as number;
    }
    return true;
  };
  for (
    const [t, v] of [...net.tensors.values()].flatMap((t) => {
      const v = views.get(t);
      return v ? [[t, v] as const] : [];
    })
  ) {
    if (!views.has(t)) continue;
    const crop = t.producer;
    if (crop?.kind === "Padding" && crop.inputs[0] === v.of) {
      const ok = readersOf(t).every((r) =>
        VIEW_READERS.has(r.kind) && r.inputs.indexOf(t) === 0 && r.inputs.lastIndexOf(t) === 0
      );
      if (!ok) drop(t, "one of its readers cannot read a view");
    } else if (!concatInPlace(v.of)) {
      for (const u of net.tensors.values()) {
        if (views.get(u)?.of === v.of) {
          drop(u, `"${v.of.name}" can no longer be assembled in place`);
        }
      }
    }
  }
  return dropped;
}
