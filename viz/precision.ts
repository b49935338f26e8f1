/**
 * The precision figure: per layer, the precision the reduced build ran it in and its output's
 * error against FP32 (compareWithFp32's rows), so the layer where accuracy is lost stands out.
 */
import type { Figure } from "./figures.ts";

/** One row of compareWithFp32 (builder/compare.ts), as the figure reads it. */
export interface PrecisionErrorRow {
  layer: string;
  precision: string;
  maxRelError: number;
  meanRelError: number;
  kind?: string;
}

/** The colour of each precision's bars (a colour-blind-safe triple). */
export const PRECISION_COLORS: Record<string, string> = {
  fp32: "#29335c",
  fp16: "#17bebb",
  int8: "#e4572e",
  reformat: "#a0a0a0",
};

const FONT = { family: "Inter, Helvetica, Arial, sans-serif", size: 12 };

/**
 * Bars of each layer's max relative error (log scale, in execution order), coloured by its
 * precision, with its mean relative error as a line of markers; hover names layer and kind.
 */
export function precisionFigure(
  rows: readonly PrecisionErrorRow[],
  title = "Per-layer error against FP32",
): Figure {
  const layers = rows.map((r) => r.layer);
  // Zero error (an FP32 layer fed exact values) cannot sit on a log axis: drawn at the floor.
  const positive = rows.flatMap((r) => [r.maxRelError, r.meanRelError]).filter((v) => v > 0);
  const floor = positive.length ? Math.min(...positive) / 10 : 1e-8;
  const shown = (v: number) => (v > 0 && Number.isFinite(v) ? v : v > 0 ? null : floor);
  const precisions = [...new Set(rows.map((r) => r.precision))];
  return {
    data: [
      ...precisions.map((p) => {
        const mine = rows.map((r) => r.precision === p);
        return {
          type: "bar",
          name: p.toUpperCase(),
          x: layers,
          y: rows.map((r, i) => (mine[i] ? shown(r.maxRelError) : null)),
          marker: { color: PRECISION_COLORS[p] ?? "#888888" },
          hovertext: rows.map((r) =>
            `${r.layer}${r.kind ? ` (${r.kind})` : ""}<br>${r.precision.toUpperCase()}` +
            `<br>max rel. error ${r.maxRelError.toExponential(2)}` +
            `<br>mean rel. error ${r.meanRelError.toExponential(2)}`
          ),
          hoverinfo: "text",
        };
      }),
      {
        type: "scatter",
        mode: "markers",
        name: "mean rel. error",
        x: layers,
        y: rows.map((r) => shown(r.meanRelError)),
        marker: { color: "#ffc914", size: 9, symbol: "diamond", line: { width: 1 } },
      },
    ],
    layout: {
      title: { text: title },
      barmode: "overlay",
      xaxis: { automargin: true, tickangle: -30, categoryorder: "array", categoryarray: layers },
      yaxis: { title: { text: "relative error (max bars, mean markers)" }, type: "log" },
      legend: { orientation: "h", y: -0.3 },
      height: 420,
      font: FONT,
    },
  };
}

/** Time spent in one precision (or in reformats) over a profiled run. */
export interface PrecisionTime {
  /** "fp32", "fp16", "int8", or "reformat" for the conversions between them. */
  precision: string;
  ms: number;
  layers: number;
}

/**
 * Sums a profile (Profiler.report()) by the precision each layer ran in (engine.describe()'s
 * layers, matched by name); Reformat layers are counted apart, as "reformat".
 */
export function timeByPrecision(
  times: readonly { layer: string; kind: string; ms: number }[],
  layers: readonly { name: string; precision: string }[],
): PrecisionTime[] {
  const precisionOf = new Map(layers.map((l) => [l.name, l.precision]));
  const sums = new Map<string, PrecisionTime>();
  for (const t of times) {
    const p = t.kind === "Reformat" ? "reformat" : precisionOf.get(t.layer) ?? "fp32";
    const s = sums.get(p) ?? { precision: p, ms: 0, layers: 0 };
    s.ms += t.ms;
    s.layers++;
    sums.set(p, s);
  }
  const order = ["int8", "fp16", "fp32", "reformat"];
  return [...sums.values()].sort((a, b) => order.indexOf(a.precision) - order.indexOf(b.precision));
}

/** One bar per precision: time per run, labelled with its share and layer count. */
export function precisionTimeFigure(
  rows: readonly PrecisionTime[],
  title = "Time in each precision",
): Figure {
  const total = rows.reduce((a, r) => a + r.ms, 0);
  return {
    data: [{
      type: "bar",
      x: rows.map((r) => r.precision.toUpperCase()),
      y: rows.map((r) => r.ms),
      text: rows.map((r) =>
        `${r.ms.toFixed(3)} ms (${
          total ? ((100 * r.ms) / total).toFixed(1) : "0"
        }%), ${r.layers} layer${r.layers === 1 ? "" : "s"}`
      ),
      textposition: "auto",
      marker: { color: rows.map((r) => PRECISION_COLORS[r.precision] ?? "#888888") },
    }],
    layout: {
      title: { text: `${title} — total ${total.toFixed(3)} ms` },
      yaxis: { title: { text: "ms per run" } },
      font: FONT,
    },
  };
}

/** The rows as a text table (layer, precision, max and mean relative error). */
export function precisionTable(rows: readonly PrecisionErrorRow[]): string {
  const w = Math.max(5, ...rows.map((r) => r.layer.length));
  return [
    `${"layer".padEnd(w)}  prec  max rel err  mean rel err`,
    ...rows.map((r) =>
      `${r.layer.padEnd(w)}  ${r.precision.padEnd(4)}  ${
        r.maxRelError.toExponential(2).padStart(11)
      }  ${r.meanRelError.toExponential(2).padStart(12)}`
    ),
  ].join("\n");
}
