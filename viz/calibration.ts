/**
 * Figures that explain INT8 calibration: a tensor's |x| histogram with the chosen threshold, and
 * the entropy calibrator's KL divergence over the candidate thresholds. They take the plain
 * shapes calibrate() returns (builder/quant/calibrate.ts), declared here so viz/ needs no builder.
 */
import { type Figure, histogramFigure } from "./figures.ts";

/** One tensor's calibration data, as in CalibrationResult.histograms. */
export interface TensorCalibration {
  edges: ArrayLike<number>;
  counts: ArrayLike<number>;
  threshold: number;
  max?: number;
  kl?: ArrayLike<number>;
  klThresholds?: ArrayLike<number>;
}

const FONT = { family: "Inter, Helvetica, Arial, sans-serif", size: 12 };

/**
 * The |x| histogram (log counts) with a dashed line at the threshold; the bins above the last
 * non-empty one are left out (a grown range may leave many).
 */
export function activationHistogramFigure(
  tensor: string,
  h: TensorCalibration,
  title?: string,
): Figure {
  let last = h.counts.length - 1;
  while (last > 0 && h.counts[last] === 0) last--;
  const counts = Array.from(h.counts).slice(0, last + 1);
  const edges = Array.from(h.edges).slice(0, last + 2);
  const fig = histogramFigure({ edges, counts }, {
    title: title ?? `|${tensor}| over the calibration set`,
    threshold: h.threshold,
  });
  const clipped = counts.reduce((a, c, i) => (edges[i] >= h.threshold ? a + c : a), 0);
  const total = counts.reduce((a, c) => a + c, 0);
  (fig.layout.annotations as Record<string, unknown>[]).push({
    xref: "paper",
    yref: "paper",
    x: 1,
    y: 1.08,
    xanchor: "right",
    showarrow: false,
    text: `max ${h.max === undefined ? "?" : h.max.toPrecision(4)}, scale ${
      (h.threshold / 127).toPrecision(4)
    }; ${total ? ((100 * clipped) / total).toPrecision(3) : "0"}% of values saturate`,
  });
  return fig;
}

/** KL(P‖Q) against the candidate threshold, the chosen one marked (entropy calibration only). */
export function klDivergenceFigure(tensor: string, h: TensorCalibration, title?: string): Figure {
  const kl = Array.from(h.kl ?? []), x = Array.from(h.klThresholds ?? []);
  const y = kl.map((v) => (Number.isFinite(v) ? v : null));
  const at = x.indexOf(h.threshold);
  return {
    data: [
      { type: "scatter", mode: "lines", name: "KL(P‖Q)", x, y, line: { color: "#29335c" } },
      ...(at >= 0
        ? [{
          type: "scatter",
          mode: "markers",
          name: `threshold ${h.threshold.toPrecision(4)}`,
          x: [h.threshold],
          y: [y[at]],
          marker: { color: "#e4572e", size: 10 },
        }]
        : []),
    ],
    layout: {
      title: { text: title ?? `KL divergence of ${tensor}'s INT8 quantization by threshold` },
      xaxis: { title: { text: "threshold (amax)" } },
      yaxis: { title: { text: "KL divergence" }, type: "log" },
      font: FONT,
    },
  };
}

/** Per-tensor thresholds against max |x|: how much of each range calibration gave up. */
export function calibrationScalesFigure(
  scales: ReadonlyMap<string, number>,
  maxima: ReadonlyMap<string, number> = new Map(),
  title = "INT8 thresholds (scale · 127) and max |x| per tensor",
): Figure {
  const names = [...scales.keys()];
  return {
    data: [
      {
        type: "bar",
        name: "threshold",
        x: names,
        y: names.map((n) => scales.get(n)! * 127),
        marker: { color: "#e4572e" },
      },
      ...(maxima.size
        ? [{
          type: "bar",
          name: "max |x|",
          x: names,
          y: names.map((n) => maxima.get(n) ?? null),
          marker: { color: "#29335c" },
        }]
        : []),
    ],
    layout: {
      title: { text: title },
      barmode: "group",
      xaxis: { automargin: true, tickangle: -30 },
      yaxis: { title: { text: "|x|" } },
      font: FONT,
    },
  };
}
