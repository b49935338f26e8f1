/**
 * Crafting plans for tests: take a valid plan apart and put it back together with an edited
 * header, manifest text or version prefix, recomputing the checksum (and, through writePlan, the
 * hashes) so that the reader's later checks are reached rather than only the checksum.
 */
import { createHash } from "node:crypto";
import { N, Network } from "../../dsl/network.ts";
import { inspectPlan, readPlan } from "../../plan/mod.ts";
import { randomArray, rng } from "../_util.ts";

export const FIXED = 20;
export const CHECKSUM_BYTES = 32;

export interface PlanParts {
  header: Record<string, unknown>;
  manifestText: string;
  weights: Uint8Array;
}

/** Splits a valid plan into its header object, manifest JSON text and weight bytes. */
export function splitPlan(bytes: Uint8Array): PlanParts {
  const h = inspectPlan(bytes);
  readPlan(bytes); // the input must be valid
  const manifestText = new TextDecoder().decode(
    bytes.subarray(h.manifestOffset, h.manifestOffset + h.manifestBytes),
  );
  return {
    header: structuredClone(h) as unknown as Record<string, unknown>,
    manifestText,
    weights: bytes.slice(h.weightsOffset, h.weightsOffset + h.weightsBytes),
  };
}

export interface AssembleOptions {
  /** Edits the header after the layout fields are filled in (return the header to write). */
  editHeader?: (h: Record<string, unknown>) => unknown;
  /** The u32 format version of the fixed prefix (default: the header's `format`). */
  prefixVersion?: number;
}

/**
 * Writes a plan: magic, version, header length, the header JSON padded with spaces (so edits do
 * not move the manifest), the manifest text, the 64-aligned weights and a valid SHA-256. The
 * layout fields (offsets, sizes) are those of the parts unless `editHeader` changes them.
 */
export function assemblePlan(parts: PlanParts, options: AssembleOptions = {}): Uint8Array {
  const enc = new TextEncoder();
  const manifest = enc.encode(parts.manifestText);
  let room = 512;
  for (;;) {
    const manifestOffset = FIXED + room;
    const weightsOffset = Math.ceil((manifestOffset + manifest.length) / 64) * 64;
    const laid = {
      ...parts.header,
      manifestOffset,
      manifestBytes: manifest.length,
      weightsOffset,
      weightsBytes: parts.weights.length,
    };
    const edited = options.editHeader ? options.editHeader(structuredClone(laid)) : laid;
    const text = enc.encode(JSON.stringify(edited) ?? "");
    if (text.length > room) {
      room = text.length + 64;
      continue;
    }
    const total = weightsOffset + parts.weights.length + CHECKSUM_BYTES;
    const out = new Uint8Array(total);
    const view = new DataView(out.buffer);
    out.set(enc.encode("KILNPLAN"), 0);
    view.setUint32(8, options.prefixVersion ?? Number(parts.header.format), true);
    view.setBigUint64(12, BigInt(room), true);
    out.fill(0x20, FIXED, FIXED + room);
    out.set(text, FIXED);
    out.set(manifest, manifestOffset);
    out.set(parts.weights, weightsOffset);
    resum(out);
    return out;
  }
}

/** Recomputes the trailing SHA-256 in place (after a deliberate edit of the covered bytes). */
export function resum(bytes: Uint8Array): Uint8Array {
  const end = bytes.length - CHECKSUM_BYTES;
  bytes.set(createHash("sha256").update(bytes.subarray(0, end)).digest(), end);
  return bytes;
}

/** A network touching every spine kind, with weights in several layers and a float16 detour. */
export function planTestNetwork(seed = 1): Network {
  const r = rng(seed);
  const net = new Network();
  const x = net.input("data", [N, 2, 8, 8]);
  const a = x
    .scale({ mode: "channel", scale: randomArray(2, r), shift: randomArray(2, r) })
    .conv({
      outputs: 4,
      kernel: 3,
      padding: 1,
      weights: randomArray(4 * 2 * 9, r),
      bias: randomArray(4, r),
      activation: { type: "relu" },
    });
  const b = x.conv({ outputs: 4, kernel: 1, weights: randomArray(8, r) }).sigmoid();
  const merged = a.add(b).maxPool({ window: 2 }).cast("float16").cast("float32");
  const logits = merged.fc({
    outputs: 5,
    weights: randomArray(5 * 64, r),
    bias: randomArray(5, r),
  });
  net.markOutput(logits.softmax(), "prob");
  net.markOutput(merged.avgPool({ window: 4, global: true }), "pooled");
  return net;
}
