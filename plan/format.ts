/**
 * The plan container:
 *
 *   [0, 8)     magic "KILNPLAN"
 *   [8, 12)    u32 LE plan format version
 *   [12, 20)   u64 LE header length H
 *   [20, 20+H) header JSON (versions, device, hashes, section offsets)
 *   manifest JSON at header.manifestOffset
 *   weight section at header.weightsOffset (64-byte aligned; every blob aligned)
 *   last 32 bytes: SHA-256 of everything before them
 *
 * Offsets are plain JSON numbers (exact to 2^53), so there is no 2 GiB limit.
 */
import { createHash } from "node:crypto";
import { KilnError } from "../errors.ts";
import { headerSchema, type Manifest, manifestSchema, type PlanHeader } from "./manifest.ts";
import { KILN_VERSION, PLAN_FORMAT_VERSION, PLAN_MAGIC } from "./version.ts";

const FIXED = 20;
const CHECKSUM_BYTES = 32;
export const WEIGHT_ALIGNMENT = 64;

export interface PlanData {
  header: PlanHeader;
  manifest: Manifest;
  /** The weight section (a view into the plan bytes when read). */
  weights: Uint8Array;
}

export type PlanDevice = PlanHeader["device"];

export function sha256Hex(...parts: Uint8Array[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
}

/** Hash of the network structure as the plan records it (weights excluded, their layout included). */
export function irHashOf(manifest: Manifest): string {
  return sha256Hex(new TextEncoder().encode(JSON.stringify(manifest)));
}

export function writePlan(
  manifest: Manifest,
  weights: Uint8Array,
  device: PlanDevice,
  cuda?: { runtime: number; driver: number },
): Uint8Array {
  const enc = new TextEncoder();
  const manifestBytes = enc.encode(JSON.stringify(manifest));
  const base = {
    format: PLAN_FORMAT_VERSION,
    kilnVersion: KILN_VERSION,
    device,
    ...(cuda ? { cuda } : {}),
    irHash: irHashOf(manifest),
    weightsHash: sha256Hex(weights),
    manifestBytes: manifestBytes.length,
    weightsBytes: weights.length,
  };
  // Offsets depend on the header's own length: iterate until the digits settle.
  let headerBytes = new Uint8Array(0);
  let manifestOffset = 0;
  let weightsOffset = 0;
  for (let i = 0; i < 8; i++) {
    const h = enc.encode(JSON.stringify({ ...base, manifestOffset, weightsOffset }));
    const mo = FIXED + h.length;
    const wo = align(mo + manifestBytes.length, WEIGHT_ALIGNMENT);
    headerBytes = h;
    if (mo === manifestOffset && wo === weightsOffset) break;
    manifestOffset = mo;
    weightsOffset = wo;
  }
  const total = weightsOffset + weights.length + CHECKSUM_BYTES;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(enc.encode(PLAN_MAGIC), 0);
  view.setUint32(8, PLAN_FORMAT_VERSION, true);
  view.setBigUint64(12, BigInt(headerBytes.length), true);
  out.set(headerBytes, FIXED);
  out.set(manifestBytes, manifestOffset);
  out.set(weights, weightsOffset);
  const sum = createHash("sha256").update(out.subarray(0, total - CHECKSUM_BYTES)).digest();
  out.set(sum, total - CHECKSUM_BYTES);
  return out;
}

function planError(
  message: string,
  offset?: number,
  code: "PLAN_INVALID" | "PLAN_VERSION" = "PLAN_INVALID",
): never {
  throw new KilnError(code, `invalid plan: ${message}`, { offset });
}

/** Reads and validates the header alone (no checksum, no manifest): cheap, and needs no device. */
export function inspectPlan(bytes: Uint8Array): PlanHeader {
  if (!(bytes instanceof Uint8Array)) {
    throw new KilnError("INVALID_ARGUMENT", "inspectPlan expects a Uint8Array");
  }
  if (bytes.length < FIXED + CHECKSUM_BYTES) {
    planError(`${bytes.length} bytes is too short to be a plan`, 0);
  }
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== PLAN_MAGIC) {
    planError(`bad magic ${JSON.stringify(magic)} (expected "${PLAN_MAGIC}"): not a Kiln plan`, 0);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const format = view.getUint32(8, true);
  if (format !== PLAN_FORMAT_VERSION) {
    planError(
      `plan format version ${format}; this Kiln (${KILN_VERSION}) reads version ${PLAN_FORMAT_VERSION}`,
      8,
      "PLAN_VERSION",
    );
  }
  const hlen = view.getBigUint64(12, true);
  if (hlen > BigInt(bytes.length - FIXED - CHECKSUM_BYTES)) {
    planError(
      `header length ${hlen} runs past the end of the ${bytes.length}-byte file (truncated?)`,
      12,
    );
  }
  const header = parseJson(bytes.subarray(FIXED, FIXED + Number(hlen)), "header", FIXED);
  const r = headerSchema.safeParse(header);
  if (!r.success) planError(`header: ${zodMessage(r.error)}`, FIXED);
  const h = r.data;
  if (h.format !== format) {
    planError(`header says format ${h.format} but the prefix says ${format}`, FIXED);
  }
  if (h.kilnVersion !== KILN_VERSION) {
    planError(
      `plan was built by Kiln ${h.kilnVersion}; this is Kiln ${KILN_VERSION} (rebuild the engine)`,
      FIXED,
      "PLAN_VERSION",
    );
  }
  const end = bytes.length - CHECKSUM_BYTES;
  if (h.manifestOffset < FIXED + Number(hlen) || h.manifestOffset + h.manifestBytes > end) {
    planError(
      `manifest [${h.manifestOffset}, +${h.manifestBytes}) lies outside the file (truncated?)`,
      FIXED,
    );
  }
  if (h.weightsOffset % WEIGHT_ALIGNMENT !== 0) {
    planError(`weight section offset ${h.weightsOffset} is not aligned`, FIXED);
  }
  if (
    h.weightsOffset < h.manifestOffset + h.manifestBytes || h.weightsOffset + h.weightsBytes !== end
  ) {
    planError(
      `weight section [${h.weightsOffset}, +${h.weightsBytes}) does not end where the checksum starts (${end}): truncated or padded file`,
      FIXED,
    );
  }
  return h;
}

/** Reads a whole plan: header, checksum, manifest (zod-validated) and bounds-checked weights. */
export function readPlan(bytes: Uint8Array): PlanData {
  const header = inspectPlan(bytes);
  const end = bytes.length - CHECKSUM_BYTES;
  const sum = createHash("sha256").update(bytes.subarray(0, end)).digest("hex");
  const stored = Array.from(bytes.subarray(end), (b) => b.toString(16).padStart(2, "0")).join("");
  if (sum !== stored) planError("checksum mismatch: the file is corrupted", end);
  const raw = parseJson(
    bytes.subarray(header.manifestOffset, header.manifestOffset + header.manifestBytes),
    "manifest",
    header.manifestOffset,
  );
  const r = manifestSchema.safeParse(raw);
  if (!r.success) planError(`manifest: ${zodMessage(r.error)}`, header.manifestOffset);
  const manifest = r.data;
  if (irHashOf(manifest) !== header.irHash) {
    planError("the manifest does not match the IR hash in the header", header.manifestOffset);
  }
  const weights = bytes.subarray(header.weightsOffset, header.weightsOffset + header.weightsBytes);
  if (sha256Hex(weights) !== header.weightsHash) {
    planError("the weights do not match the weights hash in the header", header.weightsOffset);
  }
  checkReferences(manifest, header);
  return { header, manifest, weights };
}

const ELEMENT_BYTES = { float32: 4, int32: 4, float16: 2, int8: 1 } as const;

function checkReferences(m: Manifest, h: PlanHeader): void {
  const nt = m.tensors.length;
  m.bindings.forEach((b, i) => {
    if (b.tensor >= nt) {
      planError(
        `binding ${i} ("${b.name}") refers to tensor ${b.tensor} of ${nt}`,
        h.manifestOffset,
      );
    }
  });
  if (m.memory.offsets.length !== nt) {
    planError(
      `the memory plan has ${m.memory.offsets.length} offsets for ${nt} tensors`,
      h.manifestOffset,
    );
  }
  m.tensors.forEach((t, i) => {
    if (t.dims.some((d, j) => d === "N" && j !== 0)) {
      planError(`tensor ${i} ("${t.name}") has N past dim 0`, h.manifestOffset);
    }
    // Every tensor's slot at the maximum batch must lie inside the arena (but a constant's
    // alias, which lives in the weight section: plan/aliases.ts).
    const bytes = t.dims.reduce<number>((a, d) => a * (d === "N" ? m.maxBatchSize : d), 1) *
      ELEMENT_BYTES[t.dtype];
    const inArena = !(t.alias && "constant" in t.alias);
    if (
      !Number.isSafeInteger(bytes) || inArena && m.memory.offsets[i] + bytes > m.memory.arenaBytes
    ) {
      planError(
        `tensor ${i} ("${t.name}") at arena offset ${
          m.memory.offsets[i]
        } (+${bytes} bytes) lies outside the ${m.memory.arenaBytes}-byte activation arena`,
        h.manifestOffset,
      );
    }
  });
  m.layers.forEach((l) => {
    for (const t of [...l.inputs, ...l.outputs]) {
      if (t >= nt) planError(`layer "${l.name}" refers to tensor ${t} of ${nt}`, h.manifestOffset);
    }
    for (const [slot, w] of Object.entries(l.weights)) {
      const size = ELEMENT_BYTES[w.dtype];
      if (w.offset % size !== 0 || w.offset + w.count * size > h.weightsBytes) {
        planError(
          `layer "${l.name}" weights "${slot}" [${w.offset}, +${
            w.count * size
          }) lie outside the ${h.weightsBytes}-byte weight section`,
          h.weightsOffset,
        );
      }
    }
  });
}

function parseJson(bytes: Uint8Array, what: string, offset: number): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    planError(`${what} is not valid JSON (${(e as Error).message})`, offset);
  }
}

function zodMessage(e: { issues: { path: PropertyKey[]; message: string }[] }): string {
  return e.issues.slice(0, 3).map((i) =>
    `${i.path.map(String).join(".") || "(root)"}: ${i.message}`
  ).join("; ");
}

export function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
