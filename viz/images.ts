/**
 * Small images as a plotly figure: a grid of heatmaps with a caption over each (digits with
 * their predicted class, feature maps, attention maps). Each image gets its own pair of axes,
 * with square pixels and row 0 at the top, as the image is stored.
 */
import { KilnError } from "../errors.ts";
import type { Figure } from "./figures.ts";

export interface GridImage {
  /** Row-major values, `width * height` of them. */
  pixels: ArrayLike<number>;
  width: number;
  height: number;
  /** Shown above the image (e.g. "7 (p 0.99)"). */
  caption?: string;
}

export interface ImageGridOptions {
  title?: string;
  /** Images per row (default: up to 5). */
  columns?: number;
  /** A plotly colorscale name; "Greys" (the default) draws low values black, high white. */
  colorscale?: string;
  /** The values drawn as the ends of the colour scale (default: each image's own range). */
  zmin?: number;
  zmax?: number;
  /** Pixels of screen per image side (default 110). */
  cellSize?: number;
}

/** A grid of images as heatmaps, captioned, one subplot each. */
export function imageGridFigure(
  images: readonly GridImage[],
  options: ImageGridOptions = {},
): Figure {
  if (images.length === 0) {
    throw new KilnError("INVALID_ARGUMENT", "imageGridFigure needs at least one image");
  }
  images.forEach((img, i) => {
    const { width: w, height: h } = img;
    if (!(Number.isInteger(w) && w > 0 && Number.isInteger(h) && h > 0)) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `image ${i}: width and height must be positive integers, got ${w}x${h}`,
      );
    }
    if (img.pixels.length !== w * h) {
      throw new KilnError(
        "SHAPE_MISMATCH",
        `image ${i}: ${w}x${h} needs ${w * h} pixels, got ${img.pixels.length}`,
      );
    }
  });
  const columns = options.columns ?? Math.min(5, images.length);
  if (!(Number.isInteger(columns) && columns > 0)) {
    throw new KilnError("INVALID_ARGUMENT", `columns must be a positive integer, got ${columns}`);
  }
  const rows = Math.ceil(images.length / columns);
  const cell = options.cellSize ?? 110;
  const captionPx = images.some((img) => img.caption) ? 22 : 0;
  // Plotly names the first axes "x"/"xaxis", the next "x2"/"xaxis2", ...
  const axis = (i: number) => (i === 0 ? "" : `${i + 1}`);
  const layout: Record<string, unknown> = {
    title: options.title === undefined ? undefined : { text: options.title },
    grid: { rows, columns, pattern: "independent", xgap: 0.08, ygap: captionPx ? 0.25 : 0.08 },
    width: columns * cell + 40,
    height: rows * (cell + captionPx) + (options.title === undefined ? 30 : 70),
    margin: { l: 20, r: 20, t: options.title === undefined ? 30 : 60, b: 10 },
    showlegend: false,
    font: { family: "Inter, Helvetica, Arial, sans-serif", size: 12 },
    annotations: images.flatMap((img, i) =>
      img.caption === undefined ? [] : [{
        text: img.caption,
        xref: `x${axis(i)} domain`,
        yref: `y${axis(i)} domain`,
        x: 0.5,
        y: 1,
        xanchor: "center",
        yanchor: "bottom",
        showarrow: false,
      }]
    ),
  };
  images.forEach((_, i) => {
    layout[`xaxis${axis(i)}`] = { visible: false, constrain: "domain" };
    layout[`yaxis${axis(i)}`] = {
      visible: false,
      autorange: "reversed", // row 0 at the top
      scaleanchor: `x${axis(i)}`, // square pixels
      constrain: "domain",
    };
  });
  return {
    data: images.map((img, i) => ({
      type: "heatmap",
      z: Array.from(
        { length: img.height },
        (_, r) => Array.from({ length: img.width }, (_, c) => img.pixels[r * img.width + c]),
      ),
      xaxis: `x${axis(i)}`,
      yaxis: `y${axis(i)}`,
      colorscale: options.colorscale ?? "Greys",
      zmin: options.zmin,
      zmax: options.zmax,
      showscale: false,
      hovertemplate: `${img.caption ?? `image ${i}`}<br>row %{y}, col %{x}: %{z}<extra></extra>`,
    })),
    layout,
  };
}
