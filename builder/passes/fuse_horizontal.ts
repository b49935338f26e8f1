/**
 * Horizontal fusion: convolutions that read the same tensor with the same geometry (kernel,
 * stride, padding, dilation, one group) and the same fused activation become one convolution
 * whose filters and biases are theirs concatenated, so the input is read once and one larger
 * GEMM runs instead of several small ones (GoogLeNet's inception 1x1, 3x3_reduce and 5x5_reduce
 * branches).
 *
 * The fused output F holds the branches' channels one after another. Each original output keeps
 * its tensor (consumers and bindings are unchanged) and is now a channel crop of F: a Padding
 * layer with negative pads on dim 1. When every reader of a crop can read a view (plan/views.ts:
 * a convolution's data input), the crop's output becomes a view of F and the crop does nothing
 * at run time; otherwise it copies its slice, which concat elision (elide_concat.ts) can still
 * send straight into a concatenation's output.
 */
import { Layer, type NetworkGraph, Tensor } from "../../dsl/ir/graph.ts";
import type { Weights } from "../../dsl/ir/weights.ts";
import { VIEW_READERS, viewProblem } from "../../plan/views.ts";
import type { Pass } from "../pass.ts";
import { consumersOf } from "./_rewrite.ts";
import { setView, viewOf } from "./_views.ts";

/** What must be equal for two convolutions to fuse, or undefined when `l` cannot fuse. */
function fusionKey(l: Layer): string | undefined {
  if (l.kind !== "Convolution" || l.inputs.length !== 1 || l.outputs.length !== 1) return;
  const a = l.attrs;
  if (a.groups !== 1 || a.residual || l.outputTypes.size) return;
  const out = l.outputs[0];
  if (out.dtype !== "float32" || out.dims.length !== 4 || viewOf(out)) return;
  const w = l.weights.get("weights"), b = l.weights.get("bias");
  if (w?.dtype !== "float32" || (b && b.dtype !== "float32")) return;
  return JSON.stringify([
    a.kernel,
    a.stride,
    a.padding,
    a.postPadding ?? a.padding,
    a.dilation,
    a.activation ?? null,
    l.precision ?? null,
  ]);
}

/** Groups of two or more fusable convolutions per input tensor, in network order. */
function fusionGroups(net: NetworkGraph): Layer[][] {
  const groups = new Map<string, Layer[]>();
  const ids = new Map<Tensor, number>();
  for (const l of net.layers) {
    const key = fusionKey(l);
    if (key === undefined) continue;
    const x = l.inputs[0];
    if (!ids.has(x)) ids.set(x, ids.size);
    const k = `${ids.get(x)}:${key}`;
    groups.set(k, [...(groups.get(k) ?? []), l]);
  }
  return [...groups.values()].filter((g) => g.length >= 2);
}

/** Concatenates the group's weights (and biases, zeros where a branch has none). */
function fusedWeights(group: Layer[], total: number): Map<string, Weights> {
  const parts = group.map((l) => l.weights.get("weights")!.values as Float32Array);
  const weights = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) weights.set(p, at), at += p.length;
  const out = new Map<string, Weights>([["weights", { dtype: "float32", values: weights }]]);
  if (group.some((l) => l.weights.has("bias"))) {
    const bias = new Float32Array(total);
    let c = 0;
    for (const l of group) {
      const b = l.weights.get("bias")?.values as Float32Array | undefined;
      if (b) bias.set(b, c);
      c += l.attrs.outputs as number;
    }
    out.set("bias", { dtype: "float32", values: bias });
  }
  return out;
}

/** Whether every reader of `t` reads it as input 0 of a kind that honours a view. */
function viewReadable(net: NetworkGraph, t: Tensor): boolean {
  if (net.outputs.includes(t)) return false;
  const readers = consumersOf(net, t);
  return readers.length > 0 &&
    readers.every((r) =>
      VIEW_READERS.has(r.kind) && r.inputs.indexOf(t) === 0 &&
      r.inputs.lastIndexOf(t) === 0
    );
}

function fuseGroup(net: NetworkGraph, group: Layer[]): string[] {
  const x = group[0].inputs[0];
  const total = group.reduce((a, l) => a + (l.attrs.outputs as number), 0);
  const [n, , h, w] = group[0].outputs[0].dims;
  const name = net.uniqueLayerName(group.map((l) => l.name).join(" | "));
  const fusedOut = new Tensor(
    net,
    net.uniqueTensorName(group.map((l) => l.outputs[0].name).join(" | ")),
    [n, total, h, w],
    "float32",
  );
  net.registerTensor(fusedOut);
  const fused = new Layer(
    net,
    name,
    "Convolution",
    { ...structuredClone(group[0].attrs), outputs: total },
    fusedWeights(group, total),
    [x],
    [fusedOut],
  );
  fused.sources = group.flatMap((l) => l.sources);
  fused.precision = group[0].precision;
  fusedOut.producer = fused;
  net.registerLayer(fused);
  net.layers.pop();
  // The fused layer takes the first member's place (the input is ready there); each member
  // becomes the crop of its channels right after it, so every consumer still runs later.
  const at = net.layers.indexOf(group[0]);
  const crops: Layer[] = [];
  const lines: string[] = [];
  let offset = 0;
  for (const l of group) {
    const out = l.outputs[0];
    const k = l.attrs.outputs as number;
    net.removeLayer(l);
    const crop = new Layer(
      net,
      net.uniqueLayerName(`${l.name} [channels ${offset}..${offset + k})`),
      "Padding",
      { pre: [-offset, 0, 0], post: [-(total - offset - k), 0, 0], mode: "constant", value: 0 },
      new Map(),
      [fusedOut],
      [out],
    );
    crop.sources = [];
    out.producer = crop;
    net.registerLayer(crop);
    net.layers.pop();
    crops.push(crop);
    if (viewReadable(net, out) && !viewProblem(out, fusedOut, offset)) {
      setView(out, fusedOut, offset);
      lines.push(
        `"${out.name}" is channels ${offset}..${offset + k} of the fused output, read in place`,
      );
    } else {
      lines.push(`"${out.name}" is copied out of channels ${offset}..${offset + k}`);
    }
    offset += k;
  }
  net.layers.splice(at, 0, fused, ...crops);
  return [
    `fused ${group.length} convolutions reading "${x.name}" (${
      group.map((l) => `"${l.name}"`).join(", ")
    }) into "${name}" with ${total} output channels; ${lines.join("; ")}`,
  ];
}

export const fuseHorizontal: Pass = {
  name: "fuseHorizontal",
  description:
    "fuse convolutions of equal geometry that read the same tensor into one with concatenated filters",
  level: 1,
  requires: ["fuseEpilogue"],
  run({ network }) {
    return fusionGroups(network).flatMap((g) => fuseGroup(network, g));
  },
};
