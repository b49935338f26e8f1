/** Standalone HTML exports that open with no network access (plotly.js inlined). */
import { KilnError } from "../errors.ts";
import type { Figure } from "./figures.ts";
import { figureHtml } from "./display.ts";
import type { Svg } from "./network.ts";

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${title.replace(/</g, "&lt;")}</title>
<style>body{font-family:Helvetica,Arial,sans-serif;margin:16px}</style></head>
<body>${body}</body></html>
`;
}

/** The HTML of a figure or a drawing; written atomically to `path` when given. */
export async function toHtml(content: Figure | Svg, path?: string): Promise<string> {
  const isSvg = "svg" in content && typeof (content as Svg).svg === "string";
  const html = isSvg ? page("Kiln network", (content as Svg).svg) : page(
    ((content as Figure).layout.title as { text?: string } | undefined)?.text ?? "Kiln figure",
    figureHtml(content as Figure, true),
  );
  if (path !== undefined) await writeAtomic(path, html);
  return html;
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new KilnError("IO_ERROR", `could not write ${path}: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
}
