/**
 * Small helpers the MNIST examples share: command-line flags, weights looked up by name,
 * a transpose for TensorFlow's [in, out] matrices, and the digit-and-scores printout.
 */
import { type DeviceSpec, float32Values, KilnError, type WtsTensor } from "../mod.ts";

export type Device = "cpu" | "cuda" | "auto";

/** What the pgm-digit examples return. */
export interface DigitsResult {
  /** The predicted class of each image 0..9. */
  predictions: number[];
  correct: number;
  /** The device the engine ran on, in words. */
  device: string;
}

/**
 * `--name=value` flags; each known flag's default is given in `defaults`. Unknown flags are a
 * KilnError that lists the known ones (main() prints it with the usage line).
 */
export function parseFlags<T extends Record<string, string>>(args: string[], defaults: T): T {
  const out: Record<string, string> = { ...defaults };
  for (const a of args) {
    const m = /^--([\w-]+)=(.*)$/.exec(a);
    if (!m || !(m[1] in defaults)) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `unknown argument "${a}" (flags: ${Object.keys(defaults).map((k) => `--${k}=`).join(" ")})`,
      );
    }
    out[m[1]] = m[2];
  }
  return out as T;
}

/** The --device flag, defaulting to $KILN_DEVICE (the GPU test suite sets it) or "auto". */
export function deviceFlag(value: string | undefined): Device {
  const d = value || Deno.env.get("KILN_DEVICE") || "auto";
  if (d !== "cpu" && d !== "cuda" && d !== "auto") {
    throw new KilnError("INVALID_ARGUMENT", `--device must be cpu, cuda or auto; got "${d}"`);
  }
  return d satisfies DeviceSpec;
}

/** A positive integer flag. */
export function intFlag(name: string, value: string): number {
  const n = Number(value);
  if (!(Number.isInteger(n) && n >= 1)) {
    throw new KilnError("INVALID_ARGUMENT", `--${name} must be a positive integer; got "${value}"`);
  }
  return n;
}

/** A file path from a file: URL (defaults are given relative to the example's own file). */
export function pathOf(url: URL): string {
  return decodeURIComponent(url.pathname);
}

/** Whether a file or folder exists. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A buffer of a weight file as float32, or an error naming the file and what it holds. */
export function weightsNamed(
  weights: Map<string, WtsTensor>,
  name: string,
  file: string,
): Float32Array {
  const t = weights.get(name);
  if (!t) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `${file} has no buffer "${name}" (it holds: ${[...weights.keys()].join(", ")})`,
      { file, tensor: name },
    );
  }
  return float32Values(t);
}

/** A row-major [rows, cols] matrix as [cols, rows]: TensorFlow's [in, out] to TensorRT's [out, in]. */
export function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  if (m.length !== rows * cols) {
    throw new KilnError("SHAPE_MISMATCH", `a ${rows}x${cols} matrix has ${m.length} values`);
  }
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c];
  }
  return t;
}

/** Softmax of one row of logits (for printing; the examples' networks decide the class). */
export function softmax(logits: ArrayLike<number>): number[] {
  const max = Math.max(...Array.from(logits));
  const e = Array.from(logits, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** Index of the largest score (the first one on ties). */
export function argmax(scores: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
  return best;
}

/** The k best [class, score] pairs, best first. */
export function topK(scores: ArrayLike<number>, k: number): [number, number][] {
  return Array.from(scores, (v, i) => [i, v] as [number, number])
    .sort((a, b) => b[1] - a[1] || a[0] - b[0])
    .slice(0, k);
}

/**
 * Prints a digit as ASCII art (blank rows trimmed) with its ten scores as bars beside it,
 * then the verdict and the top three, in the spirit of TensorRT's sample output.
 */
export function printDigit(
  log: (line: string) => void,
  title: string,
  art: string[],
  scores: ArrayLike<number>,
  label: number,
  scoreName = "prob",
): void {
  const best = argmax(scores);
  // Rows with ink, but at least ten so that every bar has a row.
  const first = Math.max(0, Math.min(art.findIndex((r) => r.trim() !== ""), art.length - 10));
  const last = Math.min(
    art.length - 1,
    Math.max(art.findLastIndex((r) => r.trim() !== ""), first + 9),
  );
  const bars = Array.from(
    scores,
    (v, k) => `${k}: ${"*".repeat(Math.round(Math.max(0, v) * 20)).padEnd(20)} ${v.toFixed(4)}`,
  );
  log(`\n${title}`);
  for (let row = first; row <= last; row++) log(`  ${art[row]}   ${bars[row - first] ?? ""}`);
  // Tiny scores in exponent form, so that the runners-up still say something.
  const fmt = (v: number) => (v === 0 || Math.abs(v) >= 1e-4 ? v.toFixed(4) : v.toExponential(1));
  const top = topK(scores, 3).map(([k, v]) => `${k} (${scoreName} ${fmt(v)})`).join(", ");
  log(`  -> ${best} ${best === label ? "(correct)" : `(WRONG, expected ${label})`}; top 3: ${top}`);
}
