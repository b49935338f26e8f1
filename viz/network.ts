/**
 * Network drawings: layers as nodes (kind, output shape, weight count; fused layers list their
 * sources), tensors as edges, rendered to SVG by Graphviz compiled to WebAssembly (@viz-js/viz).
 */
import { JUPYTER_DISPLAY } from "./_jupyter.ts";
import { instance, type Viz } from "@viz-js/viz";
import { formatDims } from "../dsl/ir/dims.ts";
import type { NetworkGraph } from "../dsl/ir/graph.ts";
import type { EngineGraph } from "../runtime/engine.ts";

export interface GraphView {
  title: string;
  inputs: { name: string; shape: string }[];
  outputs: string[];
  layers: {
    name: string;
    kind: string;
    inputs: string[];
    outputs: { name: string; shape: string }[];
    weightCount: number;
    sources: string[];
    note?: string;
  }[];
}

export function viewOfNetwork(net: NetworkGraph, title = "network"): GraphView {
  return {
    title,
    inputs: net.inputs.map((t) => ({ name: t.name, shape: formatDims(t.dims) })),
    outputs: net.outputs.map((t) => t.name),
    layers: net.layers.map((l) => ({
      name: l.name,
      kind: l.kind,
      inputs: l.inputs.map((t) => t.name),
      outputs: l.outputs.map((t) => ({ name: t.name, shape: formatDims(t.dims) })),
      weightCount: [...l.weights.values()].reduce((a, w) => a + w.values.length, 0),
      sources: l.sources,
    })),
  };
}

export function viewOfEngine(g: EngineGraph, title = "optimized"): GraphView {
  const name = (i: number) => g.tensors[i].name;
  return {
    title,
    inputs: g.bindings.filter((b) => b.isInput).map((b) => ({
      name: b.name,
      shape: formatDims(g.tensors[b.tensor].dims),
    })),
    outputs: g.bindings.filter((b) => !b.isInput).map((b) => b.name),
    layers: g.layers.map((l) => ({
      name: l.name,
      kind: l.kind,
      inputs: l.inputs.map(name),
      outputs: l.outputs.map((i) => ({ name: name(i), shape: formatDims(g.tensors[i].dims) })),
      weightCount: l.weightCount,
      sources: l.sources,
      note: l.precision === "fp32" ? undefined : l.precision,
    })),
  };
}

function esc(s: string): string {
  return s.replace(
    /[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!,
  );
}

function count(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : `${n}`;
}

/** Graphviz DOT text of one or more views (several are drawn side by side as clusters). */
export function toDot(views: GraphView | GraphView[]): string {
  const list = Array.isArray(views) ? views : [views];
  const lines = [
    "digraph kiln {",
    '  graph [rankdir=TB, fontname="Helvetica", fontsize=12, nodesep=0.25, ranksep=0.35];',
    '  node [shape=plaintext, fontname="Helvetica", fontsize=10];',
    '  edge [fontname="Helvetica", fontsize=9, color="#666666"];',
  ];
  list.forEach((v, vi) => {
    const id = (s: string) => `"v${vi}:${s.replace(/"/g, '\\"')}"`;
    lines.push(
      `  subgraph cluster_${vi} {`,
      `    label=<<b>${esc(v.title)}</b> (${v.layers.length} layers)>;`,
      '    color="#bbbbbb";',
    );
    const producer = new Map<string, string>();
    for (const t of v.inputs) {
      producer.set(t.name, `in:${t.name}`);
      lines.push(
        `    ${id(`in:${t.name}`)} [shape=ellipse, style=filled, fillcolor="#e8f1ff", label=<${
          esc(t.name)
        }<br/><font point-size="9">${esc(t.shape)}</font>>];`,
      );
    }
    for (const l of v.layers) {
      for (const o of l.outputs) producer.set(o.name, `layer:${l.name}`);
      const fused = l.sources.length > 1;
      const rows = [
        `<tr><td bgcolor="${fused ? "#fde2d8" : "#dde3f5"}"><b>${esc(l.kind)}</b></td></tr>`,
        `<tr><td>${esc(l.name)}</td></tr>`,
        ...(fused
          ? [`<tr><td><font point-size="8">fuses ${esc(l.sources.join(", "))}</font></td></tr>`]
          : []),
        `<tr><td><font point-size="9">${esc(l.outputs.map((o) => o.shape).join(" "))}${
          l.weightCount ? ` · ${count(l.weightCount)} weights` : ""
        }${l.note ? ` · ${esc(l.note)}` : ""}</font></td></tr>`,
      ];
      lines.push(
        `    ${
          id(`layer:${l.name}`)
        } [label=<<table border="0" cellborder="1" cellspacing="0" cellpadding="3">${
          rows.join("")
        }</table>>];`,
      );
    }
    for (const l of v.layers) {
      for (const t of l.inputs) {
        const p = producer.get(t);
        if (p) lines.push(`    ${id(p)} -> ${id(`layer:${l.name}`)};`);
      }
    }
    for (const o of v.outputs) {
      const p = producer.get(o);
      lines.push(
        `    ${id(`out:${o}`)} [shape=ellipse, style=filled, fillcolor="#e6f6e6", label=<${
          esc(o)
        }>];`,
      );
      if (p) lines.push(`    ${id(p)} -> ${id(`out:${o}`)};`);
    }
    lines.push("  }");
  });
  lines.push("}");
  return lines.join("\n");
}

let vizInstance: Promise<Viz> | undefined;

/** An SVG drawing that displays itself in Jupyter (image/svg+xml with a text/plain fallback). */
export class Svg {
  constructor(readonly svg: string, readonly summary: string) {}
  [JUPYTER_DISPLAY](): Record<string, string> {
    return { "image/svg+xml": this.svg, "text/plain": this.summary };
  }
  toString(): string {
    return this.svg;
  }
}

/** Draws one view, or several side by side (e.g. before and after the builder's passes). */
export async function drawNetwork(views: GraphView | GraphView[]): Promise<Svg> {
  vizInstance ??= instance();
  const viz = await vizInstance;
  const svg = viz.renderString(toDot(views), { format: "svg" });
  const list = Array.isArray(views) ? views : [views];
  return new Svg(svg, list.map((v) => `${v.title}: ${v.layers.length} layers`).join("; "));
}
