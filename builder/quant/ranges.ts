/**
 * User-given INT8 ranges, as sampleINT8API: a file of `tensor_name:value` lines (value = the
 * tensor's absolute max, the range being [−value, value]), applied with Tensor.setDynamicRange.
 * Also applies calibration scales (amax / 127) to a network's tensors.
 */
import type { NetworkGraph } from "../../dsl/ir/graph.ts";
import { KilnError } from "../../errors.ts";

/**
 * Parses a ranges file's text: one `name:value` per line (the name may itself contain ':', the
 * value is after the last one); blank lines and lines starting with '#' are skipped. Every other
 * malformed line is a KilnError with its line number.
 */
export function parseDynamicRanges(text: string, file = "<dynamic ranges>"): Map<string, number> {
  const ranges = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim(), n = i + 1;
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(":");
    const fail = (m: string): never => {
      throw new KilnError("PARSE_ERROR", `dynamic ranges line ${n}: ${m}`, { file, line: n });
    };
    if (at <= 0) fail(`expected "tensor_name:value", got ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, at).trim(), text = line.slice(at + 1).trim();
    // Number("") is 0 and Number("0x10") is 16: accept decimal notation only.
    if (!/^[+]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) {
      fail(
        `range of tensor "${name}" is ${JSON.stringify(text.slice(0, 40))}, not a decimal number`,
      );
    }
    const value = Number(text);
    if (!(Number.isFinite(value) && value > 0)) {
      fail(`range of tensor "${name}" is ${value}; it must be finite and positive`);
    }
    if (ranges.has(name)) fail(`tensor "${name}" appears twice`);
    ranges.set(name, value);
  }
  return ranges;
}

/** Reads and parses a ranges file. */
export function readDynamicRanges(path: string): Map<string, number> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new KilnError("IO_ERROR", `cannot read dynamic ranges: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
  return parseDynamicRanges(text, path);
}

export interface AppliedRanges {
  /** Tensors given a range. */
  applied: string[];
  /** Names in the ranges that are not tensors of the network. */
  unknown: string[];
  /** Float tensors of the network that got no range. */
  missing: string[];
}

/**
 * Sets [−amax, amax] on every tensor named in `ranges` (name → amax) and reports the names the
 * network lacks and the float tensors left without a range.
 */
export function applyDynamicRanges(
  network: NetworkGraph,
  ranges: ReadonlyMap<string, number>,
): AppliedRanges {
  const applied: string[] = [], unknown: string[] = [];
  for (const [name, amax] of ranges) {
    const t = network.tensors.get(name);
    if (!t) {
      unknown.push(name);
      continue;
    }
    t.setDynamicRange(-amax, amax);
    applied.push(name);
  }
  const missing = [...network.tensors.values()]
    .filter((t) => t.dtype === "float32" && !ranges.has(t.name))
    .map((t) => t.name);
  return { applied, unknown, missing };
}

/** Applies calibration scales (amax / 127) as dynamic ranges; same report as applyDynamicRanges. */
export function applyScales(
  network: NetworkGraph,
  scales: ReadonlyMap<string, number>,
): AppliedRanges {
  const ranges = new Map<string, number>();
  for (const [name, s] of scales) {
    if (!(Number.isFinite(s) && s > 0)) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `scale ${s} of tensor "${name}" is not finite and positive`,
        {
          tensor: name,
        },
      );
    }
    ranges.set(name, s * 127);
  }
  return applyDynamicRanges(network, ranges);
}
