/** Element types of tensors and weights. */
export type DType = "float32" | "float16" | "int8" | "int32";

export const DTYPES: readonly DType[] = ["float32", "float16", "int8", "int32"];

export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case "float32":
    case "int32":
      return 4;
    case "float16":
      return 2;
    case "int8":
      return 1;
  }
}

/** The host array type that carries a dtype's values (float16 travels as its raw bits). */
export type HostArray = Float32Array | Int32Array | Int8Array | Uint16Array;

export function newHostArray(dtype: DType, length: number): HostArray {
  switch (dtype) {
    case "float32":
      return new Float32Array(length);
    case "int32":
      return new Int32Array(length);
    case "int8":
      return new Int8Array(length);
    case "float16":
      return new Uint16Array(length);
  }
}

export function dtypeOfArray(a: HostArray): DType {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Int32Array) return "int32";
  if (a instanceof Int8Array) return "int8";
  return "float16";
}
