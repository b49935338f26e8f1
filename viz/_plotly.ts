/** The plotly.js bundle from the npm package `plotly.js-dist-min`, read from node_modules (never the network). */
import { KilnError } from "../errors.ts";

let cached: string | undefined;

export function plotlyJs(): string {
  if (cached !== undefined) return cached;
  const url = new URL("../node_modules/plotly.js-dist-min/plotly.min.js", import.meta.url);
  try {
    cached = Deno.readTextFileSync(url);
  } catch (e) {
    throw new KilnError(
      "IO_ERROR",
      `plotly.js was not found at ${url.pathname}: run the README's set-up (it installs the npm package plotly.js-dist-min)`,
      { file: url.pathname, cause: e },
    );
  }
  return cached;
}
