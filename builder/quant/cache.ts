/**
 * The INT8 calibration cache, in TensorRT's text layout:
 *
 *     KILN-0.1.0-EntropyCalibration2
 *     kiln-key structure=<hex> weights=<hex> algorithm=entropy2 data=<hex>
 *     data: 3c008102
 *     conv1: 3ce61f4d
 *
 * Line 1 names the writer, its version and the algorithm; each `tensor: hex` line is the bits of
 * the float32 scale (amax / 127) as one big-endian hexadecimal number, as TensorRT prints it. The
 * key line is Kiln's: a hash of the network's structure, its weights, the algorithm (with its
 * parameters) and the calibration data, each separately, so that a stale cache can say which part
 * changed. TensorRT's own caches (`TRT-8003-EntropyCalibration2`, and the legacy calibrator's
 * header of a flag and two hex doubles) are read too; they carry no key.
 */
import type { NetworkGraph } from "../../dsl/ir/graph.ts";
import { KilnError } from "../../errors.ts";
import { KILN_VERSION } from "../../plan/version.ts";

export type CalibrationAlgorithm = "entropy2" | "minmax" | "percentile" | "legacy";

/** TensorRT's header names of the algorithms (PercentileCalibration is Kiln's own). */
const HEADER_NAMES: Record<string, string> = {
  entropy2: "EntropyCalibration2",
  minmax: "MinMaxCalibration",
  percentile: "PercentileCalibration",
  legacy: "LegacyCalibration",
  // TensorRT's first entropy calibrator, which Kiln does not implement: read, never matched.
  entropy: "EntropyCalibration",
};

/** The parts a cache key hashes; a mismatch names the part. */
export type CacheKeyPart = "structure" | "weights" | "algorithm" | "data";
export const CACHE_KEY_PARTS: readonly CacheKeyPart[] = [
  "structure",
  "weights",
  "algorithm",
  "data",
];

export type CalibrationCacheKey = Record<CacheKeyPart, string>;

export interface CalibrationCache {
  /** "KILN" or "TRT" (TensorRT's legacy header also reads as "TRT"). */
  writer: "KILN" | "TRT";
  version: string;
  /** Kiln's name of the algorithm ("entropy2", …), or the header's name when Kiln has none. */
  algorithm: string;
  /** The legacy calibrator's parameters, from its header. */
  legacy?: { regressionCutoff: number; quantile: number };
  key?: CalibrationCacheKey;
  /** Tensor name → scale (amax / 127), in file order. */
  scales: Map<string, number>;
}

const LEGACY_HEADER = /^([0-9a-f])([0-9a-f]{16})([0-9a-f]{16})$/i;
const HEADER = /^(KILN|TRT)-([0-9A-Za-z._+]+)-([A-Za-z0-9]+)$/;
const KEY_LINE = /^kiln-key (.*)$/;

/** Parses a calibration cache; every malformed line is a KilnError with its line number. */
export function parseCalibrationCache(
  bytes: Uint8Array,
  file = "<calibration cache>",
): CalibrationCache {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (e) {
    throw new KilnError("PARSE_ERROR", "calibration cache is not UTF-8 text", { file, cause: e });
  }
  const lines = text.split(/\r?\n/);
  const fail = (line: number, message: string): never => {
    throw new KilnError("PARSE_ERROR", `calibration cache line ${line}: ${message}`, {
      file,
      line,
    });
  };
  const head = lines[0].trim();
  let cache: CalibrationCache;
  const legacy = LEGACY_HEADER.exec(head);
  const header = HEADER.exec(head);
  if (legacy) {
    const regressionCutoff = hexToFloat64(legacy[2]), quantile = hexToFloat64(legacy[3]);
    if (!(regressionCutoff > 0 && regressionCutoff <= 1 && quantile > 0 && quantile <= 1)) {
      fail(
        1,
        `legacy header's regression cutoff ${regressionCutoff} and quantile ${quantile} must lie in (0, 1]`,
      );
    }
    cache = {
      writer: "TRT",
      version: "legacy",
      algorithm: "legacy",
      legacy: { regressionCutoff, quantile },
      scales: new Map(),
    };
  } else if (header) {
    const name = Object.entries(HEADER_NAMES).find(([, h]) => h === header[3])?.[0];
    cache = {
      writer: header[1] as "KILN" | "TRT",
      version: header[2],
      algorithm: name ?? header[3],
      scales: new Map(),
    };
  } else {
    return fail(
      1,
      `expected a header "KILN-<version>-<Algorithm>" or "TRT-<version>-<Algorithm>", got ${
        JSON.stringify(head.slice(0, 80))
      }`,
    );
  }
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i].trim(), n = i + 1;
    if (line === "") continue;
    const k = KEY_LINE.exec(line);
    if (k) {
      if (cache.writer !== "KILN") fail(n, "a kiln-key line in a cache not written by Kiln");
      if (cache.key) fail(n, "a second kiln-key line");
      cache.key = parseKey(k[1], (m) => fail(n, m));
      continue;
    }
    // Tensor names may themselves contain ": " (TensorFlow's "x:0" does not, but be safe).
    const at = line.lastIndexOf(": ");
    if (at <= 0) {
      fail(n, `expected "tensor: <hex float32 bits>", got ${JSON.stringify(line.slice(0, 80))}`);
    }
    const name = line.slice(0, at), hex = line.slice(at + 2);
    if (!/^[0-9a-fA-F]{1,8}$/.test(hex)) {
      fail(
        n,
        `scale of tensor "${name}" must be 1 to 8 hex digits (float32 bits), got "${
          hex.slice(0, 20)
        }"`,
      );
    }
    const scale = hexToFloat32(hex);
    if (!(Number.isFinite(scale) && scale > 0)) {
      fail(n, `scale of tensor "${name}" is ${scale}; a scale must be finite and positive`);
    }
    if (cache.scales.has(name)) fail(n, `tensor "${name}" appears twice`);
    cache.scales.set(name, scale);
  }
  if (cache.writer === "KILN" && !cache.key) {
    fail(2, "a Kiln cache must carry a kiln-key line (structure, weights, algorithm, data)");
  }
  return cache;
}

function parseKey(text: string, fail: (m: string) => never): CalibrationCacheKey {
  const parts: Partial<CalibrationCacheKey> = {};
  for (const field of text.trim().split(/\s+/)) {
    const eq = field.indexOf("=");
    const name = field.slice(0, eq) as CacheKeyPart;
    if (eq <= 0 || !CACHE_KEY_PARTS.includes(name) || field.length === eq + 1) {
      fail(
        `kiln-key field ${JSON.stringify(field)} is not one of ${
          CACHE_KEY_PARTS.join("/")
        }=<value>`,
      );
    }
    if (parts[name] !== undefined) fail(`kiln-key field "${name}" appears twice`);
    parts[name] = field.slice(eq + 1);
  }
  const missing = CACHE_KEY_PARTS.filter((p) => parts[p] === undefined);
  if (missing.length) fail(`kiln-key lacks ${missing.join(", ")}`);
  return parts as CalibrationCacheKey;
}

/** The cache's text: header, key line, one `tensor: hex` line per scale. */
export function encodeCalibrationCache(
  algorithm: CalibrationAlgorithm,
  key: CalibrationCacheKey,
  scales: ReadonlyMap<string, number>,
): Uint8Array {
  const lines = [
    `KILN-${KILN_VERSION}-${HEADER_NAMES[algorithm]}`,
    `kiln-key ${CACHE_KEY_PARTS.map((p) => `${p}=${key[p]}`).join(" ")}`,
  ];
  for (const [name, scale] of scales) {
    if (!(Number.isFinite(scale) && scale > 0)) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `scale ${scale} of tensor "${name}" is not finite and positive`,
        {
          tensor: name,
        },
      );
    }
    if (/[\r\n]/.test(name) || name.trim() !== name || name === "") {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `tensor name ${JSON.stringify(name)} cannot be written to a cache line`,
        {
          tensor: name,
        },
      );
    }
    lines.push(`${name}: ${float32ToHex(scale)}`);
  }
  return new TextEncoder().encode(lines.join("\n") + "\n");
}

/** The parts of `found` that differ from `expected`, in CACHE_KEY_PARTS order. */
export function staleParts(
  expected: CalibrationCacheKey,
  found: CalibrationCacheKey,
): CacheKeyPart[] {
  return CACHE_KEY_PARTS.filter((p) => expected[p] !== found[p]);
}

/** The float32 bits of `v` as TensorRT prints them (lower-case hex, no leading zeros). */
export function float32ToHex(v: number): string {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setFloat32(0, v);
  return dv.getUint32(0).toString(16);
}

export function hexToFloat32(hex: string): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, parseInt(hex, 16));
  return dv.getFloat32(0);
}

function hexToFloat64(hex: string): number {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setUint32(0, parseInt(hex.slice(0, 8), 16));
  dv.setUint32(4, parseInt(hex.slice(8), 16));
  return dv.getFloat64(0);
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Hash of the network's structure: tensors (names, dims, dtypes), layers (kinds, attributes, wiring). */
export function structureHash(net: NetworkGraph): Promise<string> {
  const t = (
    x: { name: string; dims: readonly unknown[]; dtype: string },
  ) => [x.name, x.dims, x.dtype];
  const text = JSON.stringify(
    {
      inputs: net.inputs.map(t),
      layers: net.layers.map((l) => ({
        name: l.name,
        kind: l.kind,
        attrs: l.attrs,
        inputs: l.inputs.map((x) => x.name),
        outputs: l.outputs.map(t),
        slots: [...l.weights].map(([s, w]) => [s, w.dtype, w.values.length]),
      })),
      outputs: net.outputs.map((x) => x.name),
    },
    (
      _,
      v,
    ) => (typeof v === "bigint"
      ? v.toString()
      : ArrayBuffer.isView(v)
      ? Array.from(v as Float32Array)
      : v),
  );
  return sha256Hex(new TextEncoder().encode(text));
}

/** Hash of every weight value (layer by layer, slot by slot). */
export async function weightsHash(net: NetworkGraph): Promise<string> {
  const parts: string[] = [];
  for (const l of net.layers) {
    for (const [slot, w] of l.weights) {
      parts.push(`${l.name}/${slot}/${w.dtype}/${await sha256Hex(bytesOf(w.values))}`);
    }
  }
  return sha256Hex(new TextEncoder().encode(parts.join("\n")));
}

/** Hashes calibration batches in order (each input by name), without holding them. */
export class DataHasher {
  #parts: string[] = [];

  async add(batch: Record<string, Float32Array>): Promise<void> {
    const names = Object.keys(batch).sort();
    for (const n of names) {
      this.#parts.push(
        `${this.#parts.length}/${n}/${batch[n].length}/${await sha256Hex(bytesOf(batch[n]))}`,
      );
    }
  }

  digest(): Promise<string> {
    return sha256Hex(new TextEncoder().encode(this.#parts.join("\n")));
  }
}

/** Writes `bytes` to `path` atomically: a temporary file in the same folder, then a rename. */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${Deno.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    Deno.writeFileSync(tmp, bytes);
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* the temporary file was never created */ }
    throw new KilnError("IO_ERROR", `cannot write ${path}: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
}
