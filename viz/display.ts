/**
 * Jupyter display (Deno kernel): an object with `[JUPYTER_DISPLAY]()` returning a
 * MIME bundle is shown by the kernel. Figures carry the plotly JSON, a `text/html` fallback (a
 * div and a script; plotly.js itself is inlined the first time, never loaded from the network)
 * and a `text/plain` summary, so every front end shows something.
 */
import { JUPYTER_DISPLAY, jupyterDisplay, type JupyterDisplayFn } from "./_jupyter.ts";
import type { Figure } from "./figures.ts";
import { plotlyJs } from "./_plotly.ts";

let plotlyInlined = false;
let divCounter = 0;

function summary(fig: Figure): string {
  const title = (fig.layout.title as { text?: string } | undefined)?.text ?? "figure";
  return `${title.replace(/<[^>]+>/g, "")} (${fig.data.length} trace${
    fig.data.length === 1 ? "" : "s"
  })`;
}

/** HTML that draws `fig` into a fresh div; includes plotly.js when `inline`. */
export function figureHtml(fig: Figure, inline: boolean): string {
  const id = `kiln-plot-${Date.now().toString(36)}-${divCounter++}`;
  const lib = inline ? `<script type="text/javascript">${plotlyJs()}</script>` : "";
  const json = JSON.stringify(fig).replace(/</g, "\\u003c");
  return `<div id="${id}" style="width:100%;min-height:320px"></div>${lib}<script type="text/javascript">
(function(){var f=${json};var el=document.getElementById(${JSON.stringify(id)});
if(window.Plotly){window.Plotly.newPlot(el,f.data,f.layout,{responsive:true});}
else{el.textContent="plotly.js is not loaded: re-run the first plotting cell";}})();</script>`;
}

export class PlotlyFigure implements Figure {
  data: Figure["data"];
  layout: Figure["layout"];
  constructor(fig: Figure) {
    this.data = fig.data;
    this.layout = fig.layout;
  }
  [JUPYTER_DISPLAY](): Record<string, unknown> {
    const inline = !plotlyInlined;
    plotlyInlined = true;
    return {
      "application/vnd.plotly.v1+json": { data: this.data, layout: this.layout },
      "text/html": figureHtml(this, inline),
      "text/plain": summary(this),
    };
  }
}

/** Wraps a figure so that a notebook cell ending in it displays the plot. */
export function display(fig: Figure): PlotlyFigure {
  return new PlotlyFigure(fig);
}

/** Anything with a Jupyter MIME bundle (figures wrapped by display(), drawings from drawNetwork). */
export interface Displayable {
  [JUPYTER_DISPLAY](): Record<string, unknown>;
}

/** How long to give the kernel to publish a bundle of `bytes` before the cell may end. */
export function publishDelayMs(bytes: number): number {
  return bytes < 1_000_000 ? 25 : 250 + Math.ceil((250 * bytes) / 1_000_000);
}

/**
 * Shows figures and drawings from anywhere in a cell (inside an `if`, a loop, a function), each
 * through `Deno.jupyter.display`; outside a notebook it prints their `text/plain`.
 *
 * Deno's kernel publishes what a cell displays from a queue, and reports the cell idle without
 * waiting for that queue: a large bundle (the first figure, with plotly.js inlined: ~5 MB) can
 * still be on its way, and is then dropped by the front end (or lands in the next cell). So
 * show() gives the kernel time to send each bundle before it returns: a little after a small
 * one, more after a large one.
 */
export async function show(...items: (Figure | Displayable)[]): Promise<void> {
  await showWith(jupyterDisplay(), items);
}

/** show() with the display function and the wait given (for tests). */
export async function showWith(
  displayFn: JupyterDisplayFn | undefined,
  items: (Figure | Displayable)[],
  sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
): Promise<void> {
  for (const item of items) {
    const shown: Displayable = JUPYTER_DISPLAY in item
      ? item as Displayable
      : display(item as Figure);
    const bundle = shown[JUPYTER_DISPLAY]();
    if (!displayFn) {
      console.log(String(bundle["text/plain"] ?? ""));
      continue;
    }
    await displayFn(bundle, { raw: true });
    const bytes = Object.values(bundle)
      .reduce<number>(
        (n, v) => n + (typeof v === "string" ? v.length : JSON.stringify(v).length),
        0,
      );
    await sleep(publishDelayMs(bytes));
  }
}
