/** The symbol Deno's Jupyter kernel looks for on a displayed object. */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for("Jupyter.display") as never;

/** `Deno.jupyter.display`'s shape (a MIME bundle with `raw: true`). */
export type JupyterDisplayFn = (
  bundle: Record<string, unknown>,
  options: { raw: boolean; display_id?: string; update?: boolean },
) => unknown;

/**
 * `Deno.jupyter.display` inside Deno's Jupyter kernel, else undefined: elsewhere (deno run,
 * deno test) merely reading `Deno.jupyter` throws.
 */
export function jupyterDisplay(): JupyterDisplayFn | undefined {
  try {
    return (Deno as unknown as { jupyter?: { display?: JupyterDisplayFn } }).jupyter?.display;
  } catch {
    return undefined;
  }
}
