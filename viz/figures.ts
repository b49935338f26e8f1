/**
 * Plotly figure builders. Each returns a plain `{data, layout}` object that plotly.js draws as
 * is: in a notebook (see display.ts), in a standalone HTML file (html.ts), or anywhere else.
 */
import type { LayerTime } from "../runtime/profiler.ts";

export interface Figure {
  data: Record<string, unknown>[];
  layout: Record<string, unknown>;
}

const FONT = { family: "Inter, Helvetica, Arial, sans-serif", size: 12 };

/** A fused layer's label: its name, and the layers it stands for when there are several. */
function label(t: Pick<LayerTime, "layer" | "sources">): string {
  return t.sources.length > 1
    ? `${t.layer}<br><sub>(${t.sources.length} fused: ${t.sources.join(", ")})</sub>`
    : t.layer;
}

/** Per-layer profile: horizontal bars, slowest at the top, with each layer's share of the total. */
export function profileFigure(times: readonly LayerTime[], title = "Per-layer time"): Figure {
  const rows = [...times].sort((a, b) => a.ms - b.ms);
  const total = rows.reduce((a, r) => a + r.ms, 0);
  return {
    data: [{
      type: "bar",
      orientation: "h",
      x: rows.map((r) => r.ms),
      y: rows.map((r) => r.layer),
      text: rows.map((r) =>
        `${r.ms.toFixed(3)} ms (${total ? ((100 * r.ms) / total).toFixed(1) : "0"}%)`
      ),
      textposition: "auto",
      hovertext: rows.map((r) => `${label(r)}<br>${r.kind}`),
      hoverinfo: "text",
      marker: { color: rows.map((r) => (r.sources.length > 1 ? "#e4572e" : "#29335c")) },
    }],
    layout: {
      title: { text: `${title} — total ${total.toFixed(3)} ms` },
      xaxis: { title: { text: "ms per run" } },
      yaxis: { automargin: true },
      height: Math.max(300, 24 * rows.length + 120),
      margin: { l: 10, r: 20, t: 50, b: 50 },
      font: FONT,
    },
  };
}

/** One execution as a timeline: each layer a bar from its start to its end, in order. */
export function timelineFigure(
  times: readonly LayerTime[],
  title = "Timeline of one execution",
): Figure {
  let t = 0;
  const starts = times.map((r) => {
    const s = t;
    t += r.ms;
    return s;
  });
  return {
    data: [{
      type: "bar",
      orientation: "h",
      base: starts,
      x: times.map((r) => r.ms),
      y: times.map((r) => r.layer),
      hovertext: times.map((r, i) =>
        `${label(r)}<br>${starts[i].toFixed(3)} → ${(starts[i] + r.ms).toFixed(3)} ms`
      ),
      hoverinfo: "text",
      marker: { color: "#17bebb" },
    }],
    layout: {
      title: { text: title },
      xaxis: { title: { text: "ms since the start of the run" } },
      yaxis: { automargin: true, autorange: "reversed" },
      height: Math.max(300, 22 * times.length + 120),
      font: FONT,
    },
  };
}

/** The same network across devices or precisions: grouped bars per layer, one group per variant. */
export function comparisonFigure(
  variants: Record<string, readonly LayerTime[]>,
  title = "Per-layer time by variant",
): Figure {
  const names = Object.keys(variants);
  const layers = [...new Set(names.flatMap((n) => variants[n].map((t) => t.layer)))];
  return {
    data: names.map((n) => {
      const byLayer = new Map(variants[n].map((t) => [t.layer, t.ms]));
      return { type: "bar", name: n, x: layers, y: layers.map((l) => byLayer.get(l) ?? null) };
    }),
    layout: {
      title: { text: title },
      barmode: "group",
      yaxis: { title: { text: "ms per run" } },
      xaxis: { automargin: true, tickangle: -30 },
      font: FONT,
    },
  };
}

export interface Histogram {
  /** Bin edges (length = counts.length + 1). */
  edges: ArrayLike<number>;
  counts: ArrayLike<number>;
}

/** An activation histogram with log-scale counts and a vertical line at the chosen threshold. */
export function histogramFigure(
  h: Histogram,
  options: { title?: string; threshold?: number } = {},
): Figure {
  const centers = Array.from(h.counts, (_, i) => (h.edges[i] + h.edges[i + 1]) / 2);
  const widths = Array.from(h.counts, (_, i) => h.edges[i + 1] - h.edges[i]);
  const shapes = options.threshold === undefined ? [] : [{
    type: "line",
    x0: options.threshold,
    x1: options.threshold,
    yref: "paper",
    y0: 0,
    y1: 1,
    line: { color: "#e4572e", width: 2, dash: "dash" },
  }];
  return {
    data: [{
      type: "bar",
      x: centers,
      y: Array.from(h.counts),
      width: widths,
      marker: { color: "#29335c" },
    }],
    layout: {
      title: { text: options.title ?? "Activation histogram" },
      xaxis: { title: { text: "|x|" } },
      yaxis: { title: { text: "count" }, type: "log" },
      shapes,
      annotations: options.threshold === undefined ? [] : [{
        x: options.threshold,
        yref: "paper",
        y: 1,
        text: `threshold ${options.threshold.toPrecision(4)}`,
        showarrow: false,
        xanchor: "left",
      }],
      bargap: 0,
      font: FONT,
    },
  };
}

export interface TensorLifetime {
  tensor: string;
  /** First and last layer index (execution order) at which the tensor holds a value. */
  first: number;
  last: number;
  bytes: number;
  /** Arena offset, when planned. */
  offset?: number;
}

/** Memory lifetimes: each tensor a bar over the layers during which it lives. */
export function memoryLifetimeFigure(
  lifetimes: readonly TensorLifetime[],
  title = "Activation lifetimes",
): Figure {
  return {
    data: [{
      type: "bar",
      orientation: "h",
      base: lifetimes.map((l) => l.first),
      x: lifetimes.map((l) => l.last - l.first + 1),
      y: lifetimes.map((l) => l.tensor),
      hovertext: lifetimes.map((l) =>
        `${l.tensor}: layers ${l.first}–${l.last}, ${(l.bytes / 1024).toFixed(1)} KiB${
          l.offset === undefined ? "" : ` at offset ${l.offset}`
        }`
      ),
      hoverinfo: "text",
      marker: { color: lifetimes.map((l) => l.bytes), colorscale: "Viridis", showscale: true },
    }],
    layout: {
      title: { text: title },
      xaxis: { title: { text: "layer (execution order)" } },
      yaxis: { automargin: true, autorange: "reversed" },
      height: Math.max(300, 18 * lifetimes.length + 120),
      font: FONT,
    },
  };
}
