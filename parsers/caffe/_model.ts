/**
 * `.caffemodel` files: a binary NetParameter decoded with protobufjs. Only the weights are kept:
 * each layer's blobs by layer name, from current `layer` (LayerParameter) and legacy V1 `layers`
 * (V1LayerParameter) entries alike.
 */
import { KilnError } from "../../errors.ts";
import type { CaffeWeights } from "./_build.ts";
import type { CaffeSchema } from "./_schema.ts";

// deno-lint-ignore no-explicit-any
type Msg = Record<string, any>;

export interface CaffeModel {
  /** Blobs by layer name (layers without blobs are left out). */
  byLayer: Map<string, CaffeWeights[]>;
}

export function readCaffeModel(bytes: Uint8Array, file: string, schema: CaffeSchema): CaffeModel {
  let net: Msg;
  try {
    net = schema.net.decode(bytes) as unknown as Msg;
  } catch (e) {
    throw new KilnError(
      "PARSE_ERROR",
      `${file}: not a valid binary NetParameter (.caffemodel): ${
        e instanceof Error ? e.message : e
      }`,
      { file, offset: offsetOf(e), cause: e },
    );
  }
  const current = (net.layer ?? []) as Msg[];
  const legacy = (net.layers ?? []) as Msg[];
  const byLayer = new Map<string, CaffeWeights[]>();
  for (const [i, l] of [...current, ...legacy].entries()) {
    const blobs = (l.blobs ?? []) as Msg[];
    if (!blobs.length) continue;
    const name = typeof l.name === "string" && l.name !== "" ? l.name : `(layer ${i})`;
    byLayer.set(
      name,
      blobs.map((b, j) => blobWeights(b, `${file}: layer "${name}" blob ${j}`, file)),
    );
  }
  return { byLayer };
}

/** A serialized BlobProto (a `.binaryproto`, e.g. a mean image) as dims and values. */
export function readBlobProto(bytes: Uint8Array, file: string, schema: CaffeSchema): CaffeWeights {
  let msg: Msg;
  try {
    msg = schema.blob.decode(bytes) as unknown as Msg;
  } catch (e) {
    throw new KilnError(
      "PARSE_ERROR",
      `${file}: not a valid BlobProto (.binaryproto): ${e instanceof Error ? e.message : e}`,
      { file, offset: offsetOf(e), cause: e },
    );
  }
  return blobWeights(msg, file, file);
}

/**
 * A BlobProto's dims and values: `shape` when present, else the legacy num/channels/height/width
 * (as Caffe's Blob::FromProto); float `data` or, failing that, `double_data`.
 */
export function blobWeights(b: Msg, what: string, file: string): CaffeWeights {
  const legacy = ["num", "channels", "height", "width"].some((k) => has(b, k));
  const dims = legacy
    ? [b.num, b.channels, b.height, b.width].map((v) => int(v))
    : ((b.shape?.dim ?? []) as unknown[]).map((v) => int(v));
  const bad = dims.findIndex((d) => !(Number.isSafeInteger(d) && d >= 0));
  if (bad >= 0) {
    throw new KilnError("PARSE_ERROR", `${what}: dim ${bad} is ${dims[bad]}`, { file });
  }
  const f = (b.data ?? []) as number[];
  const d = (b.double_data ?? []) as number[];
  const values = f.length ? f : d;
  const count = dims.reduce((a, v) => a * v, 1);
  if (values.length !== count) {
    throw new KilnError(
      "PARSE_ERROR",
      `${what}: holds ${values.length} values; its dims [${dims.join(",")}] need ${count}`,
      { file },
    );
  }
  return { dims, data: Float32Array.from(values) };
}

function has(m: Msg, field: string): boolean {
  return Object.hasOwn(m, field) && m[field] !== null && m[field] !== undefined;
}

/** A protobufjs int32/int64 (number or Long) as a number; NaN when not a safe integer. */
function int(v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === "number") return v;
  if (typeof v === "object" && "low" in v && "high" in v) {
    const { low, high, unsigned } = v as { low: number; high: number; unsigned?: boolean };
    const n = (unsigned ? high >>> 0 : high) * 4294967296 + (low >>> 0);
    return Number.isSafeInteger(n) ? n : NaN;
  }
  return NaN;
}

function offsetOf(e: unknown): number | undefined {
  const m = /at offset (\d+)|index out of range: (\d+)/.exec(String(e));
  return m ? Number(m[1] ?? m[2]) : undefined;
}
