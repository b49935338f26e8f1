import { KilnError } from "../../errors.ts";
import type { DType, HostArray } from "./dtype.ts";

/** Weights held by a layer: always a private copy of what the caller passed. */
export interface Weights {
  readonly dtype: DType;
  readonly values: HostArray;
}

/** What a caller may pass as weights. */
export type WeightsInput =
  | Float32Array
  | number[]
  | { dtype: DType; values: HostArray | number[] };

export function toWeights(w: WeightsInput, what: string): Weights {
  if (w instanceof Float32Array) return { dtype: "float32", values: new Float32Array(w) };
  if (Array.isArray(w)) return { dtype: "float32", values: Float32Array.from(w) };
  if (w && typeof w === "object" && "values" in w) {
    const v = w.values;
    switch (w.dtype) {
      case "float32":
        return { dtype: "float32", values: Float32Array.from(v as ArrayLike<number>) };
      case "int32":
        return { dtype: "int32", values: Int32Array.from(v as ArrayLike<number>) };
      case "int8":
        return { dtype: "int8", values: Int8Array.from(v as ArrayLike<number>) };
      case "float16":
        return { dtype: "float16", values: Uint16Array.from(v as ArrayLike<number>) };
    }
  }
  throw new KilnError(
    "INVALID_ARGUMENT",
    `${what}: weights must be a Float32Array, a number[] or {dtype, values}, got ${describe(w)}`,
  );
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "object") return (v as object).constructor?.name ?? "object";
  return typeof v;
}

/** The values of float32 weights, or an error naming the layer and slot. */
export function f32(w: Weights, layer: string, slot: string): Float32Array {
  if (w.dtype !== "float32") {
    throw new KilnError("UNSUPPORTED", `weights "${slot}" are ${w.dtype}; float32 expected`, {
      layer,
    });
  }
  return w.values as Float32Array;
}
