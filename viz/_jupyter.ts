/** The symbol Deno's Jupyter kernel looks for on a displayed object. */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for("Jupyter.display") as never;
