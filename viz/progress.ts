/**
 * Progress for long work (building, calibrating, generating): a bar that updates in place in a
 * Jupyter notebook (Deno.jupyter.display with a display_id) or on a terminal (carriage return),
 * and stays quiet when output is neither.
 */
export interface Progress {
  update(done: number, note?: string): void;
  finish(note?: string): void;
}

type JupyterDisplay = (
  bundle: Record<string, unknown>,
  opts: { raw: boolean; display_id?: string; update?: boolean },
) => unknown;

function jupyterDisplay(): JupyterDisplay | undefined {
  const j = (Deno as unknown as { jupyter?: { display?: JupyterDisplay } }).jupyter;
  return j?.display;
}

function bar(fraction: number, width = 30): string {
  const f = Math.max(0, Math.min(1, fraction));
  const full = Math.round(f * width);
  return `[${"#".repeat(full)}${"-".repeat(width - full)}] ${(100 * f).toFixed(0).padStart(3)}%`;
}

export function progress(
  label: string,
  total: number,
  options: { stream?: { isTerminal(): boolean; writeSync(b: Uint8Array): number } } = {},
): Progress {
  const jd = jupyterDisplay();
  const out = options.stream ?? Deno.stderr;
  const tty = !jd && out.isTerminal();
  const id = `kiln-progress-${crypto.randomUUID()}`;
  const enc = new TextEncoder();
  let last = -1;
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
      last = pct;
      render(done, note);
    },
    finish(note) {
      render(total, note, true);
    },
  };
}
