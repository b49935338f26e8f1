/**
 * Progress for long work (building, calibrating, generating): a bar that updates in place in a
 * Jupyter notebook (Deno.jupyter.display with a display_id) or on a terminal (carriage return),
 * and stays quiet when output is neither.
 */
import { jupyterDisplay, type JupyterDisplayFn } from "./_jupyter.ts";

export interface Progress {
  update(done: number, note?: string): void;
  finish(note?: string): void;
}

function bar(fraction: number, width = 30): string {
  const f = Math.max(0, Math.min(1, fraction));
  const full = Math.round(f * width);
  return `[${"#".repeat(full)}${"-".repeat(width - full)}] ${(100 * f).toFixed(0).padStart(3)}%`;
}

export function progress(
  label: string,
  total: number,
  options: {
    stream?: { isTerminal(): boolean; writeSync(b: Uint8Array): number };
    /** The notebook's display function (default: Deno.jupyter.display when in a kernel). */
    jupyter?: JupyterDisplayFn;
    /** Milliseconds clock (default performance.now). */
    now?: () => number;
  } = {},
): Progress {
  const jd = options.jupyter ?? jupyterDisplay();
  const now = options.now ?? (() => performance.now());
  const out = options.stream ?? Deno.stderr;
  const tty = !jd && out.isTerminal();
  const id = `kiln-progress-${crypto.randomUUID()}`;
  const enc = new TextEncoder();
  let last = -1;
  let lastDrawn = -Infinity;
  let shown = false;
  const render = (done: number, note = "", final = false) => {
    const text = `${label} ${bar(total > 0 ? done / total : 1)} ${done}/${total}${
      note ? ` ${note}` : ""
    }`;
    if (jd) {
      const html =
        `<div style="font-family:monospace">${label}: <progress value="${done}" max="${total}"></progress> ${done}/${total} ${note}</div>`;
      jd({ "text/plain": text, "text/html": html }, { raw: true, display_id: id, update: shown });
      shown = true;
    } else if (tty) {
      out.writeSync(enc.encode(`\r${text}${final ? "\n" : ""}`));
    }
  };
  return {
    update(done, note) {
      // Redraw at most once per percent.
      const pct = Math.floor((100 * done) / Math.max(1, total));
      if (pct === last && done !== total) return;
      // In a notebook every redraw is a message, and Deno's kernel drops what is still queued
      // when a cell ends: at most ten a second.
      if (jd && done !== total && now() - lastDrawn < 100) return;
      last = pct;
      lastDrawn = now();
      render(done, note);
    },
    finish(note) {
      render(total, note, true);
    },
  };
}
