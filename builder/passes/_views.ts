/**
 * Tensor views while the passes run (plan/views.ts says what a view is). The network IR has no
 * field for them, so the passes that create views record them here and the plan layout
 * (builder/build.ts) writes them into the manifest.
 */
import type { Tensor } from "../../dsl/ir/graph.ts";

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
