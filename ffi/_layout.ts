/**
 * C struct layouts in TypeScript: fields in declaration order with C's natural alignment (the
 * x86-64 and aarch64 System V rules nvcc's host compiler follows), packing values into bytes that
 * a "buffer" parameter hands to native code, and reading them back. The offsets computed here
 * are checked against the compiler's through kiln_abi_layout (see library.ts).
 */

/** A scalar C type, or a fixed array of one: "i64[8]", "char[256]". */
export type FieldType =
  | "ptr"
  | "i32"
  | "u32"
  | "f32"
  | "f64"
  | "i64"
  | "u64"
  | `${"i32" | "i64" | "char"}[${number}]`;

export type FieldValue = number | bigint | Deno.PointerValue | readonly number[];

export interface FieldLayout {
  name: string;
  type: FieldType;
  offset: number;
  /** Bytes of one element. */
  elementSize: number;
  /** 1 for scalars. */
  length: number;
}

const SCALAR: Record<string, number> = {
  ptr: 8,
  i32: 4,
  u32: 4,
  f32: 4,
  f64: 8,
  i64: 8,
  u64: 8,
  char: 1,
};

function parseType(t: FieldType): { element: string; length: number } {
  const m = /^(\w+)\[(\d+)\]$/.exec(t);
  return m ? { element: m[1], length: Number(m[2]) } : { element: t, length: 1 };
}

export class StructLayout<F extends string = string> {
  readonly fields: readonly FieldLayout[];
  readonly size: number;
  readonly #byName: Map<string, FieldLayout>;

  /**
   * @param id the KILN_STRUCT_* id of the C struct
   * @param cName the C type name, for messages
   */
  constructor(
    readonly id: number,
    readonly cName: string,
    fields: readonly (readonly [F, FieldType])[],
  ) {
    let offset = 0, maxAlign = 1;
    this.fields = fields.map(([name, type]) => {
      const { element, length } = parseType(type);
      const elementSize = SCALAR[element];
      if (elementSize === undefined) throw new Error(`${cName}.${name}: unknown type ${type}`);
      offset = alignUp(offset, elementSize);
      maxAlign = Math.max(maxAlign, elementSize);
      const f = { name, type, offset, elementSize, length };
      offset += elementSize * length;
      return f;
    });
    this.size = alignUp(offset, maxAlign);
    this.#byName = new Map(this.fields.map((f) => [f.name, f]));
  }

  field(name: F): FieldLayout {
    return this.#byName.get(name)!;
  }

  /** Packs `values` (fields left out are zero / NULL) into a new buffer of the struct's size. */
  pack(values: Partial<Record<F, FieldValue>>): Uint8Array<ArrayBuffer> {
    const bytes = new Uint8Array(this.size);
    const view = new DataView(bytes.buffer);
    for (const [name, value] of Object.entries(values) as [F, FieldValue][]) {
      const f = this.#byName.get(name);
      if (!f) throw new Error(`${this.cName} has no field "${name}"`);
      if (value === undefined) continue;
      writeField(view, f, value);
    }
    return bytes;
  }

  /** Reads a scalar field (64-bit integers as numbers: sizes and counts stay below 2^53). */
  readNumber(bytes: Uint8Array, name: F): number {
    const f = this.field(name);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    switch (f.type) {
      case "i32":
        return view.getInt32(f.offset, true);
      case "u32":
        return view.getUint32(f.offset, true);
      case "f32":
        return view.getFloat32(f.offset, true);
      case "f64":
        return view.getFloat64(f.offset, true);
      case "i64":
        return Number(view.getBigInt64(f.offset, true));
      case "u64":
      case "ptr":
        return Number(view.getBigUint64(f.offset, true));
      default:
        throw new Error(`${this.cName}.${name} is not a scalar`);
    }
  }

  /** Reads a NUL-terminated char[] field. */
  readString(bytes: Uint8Array, name: F): string {
    const f = this.field(name);
    const raw = bytes.subarray(f.offset, f.offset + f.length);
    const end = raw.indexOf(0);
    return new TextDecoder().decode(end < 0 ? raw : raw.subarray(0, end));
  }
}

function writeField(view: DataView, f: FieldLayout, value: FieldValue): void {
  const { element } = parseType(f.type);
  if (f.length > 1 || Array.isArray(value)) {
    const arr = value as readonly number[];
    if (!Array.isArray(arr) || arr.length > f.length) {
      throw new Error(`field ${f.name} takes up to ${f.length} numbers`);
    }
    arr.forEach((v, i) => writeScalar(view, element, f.offset + i * f.elementSize, v, f.name));
    return;
  }
  writeScalar(view, element, f.offset, value, f.name);
}

function writeScalar(
  view: DataView,
  type: string,
  at: number,
  value: FieldValue,
  name: string,
): void {
  switch (type) {
    case "ptr": {
      const v = value === null
        ? 0n
        : typeof value === "object"
        ? BigInt(Deno.UnsafePointer.value(value as Deno.PointerObject))
        : BigInt(value as number | bigint);
      view.setBigUint64(at, v, true);
      return;
    }
    case "i32":
      view.setInt32(at, checkInt(value, name), true);
      return;
    case "u32":
      view.setUint32(at, checkInt(value, name), true);
      return;
    case "f32":
      view.setFloat32(at, Number(value), true);
      return;
    case "f64":
      view.setFloat64(at, Number(value), true);
      return;
    case "i64":
      view.setBigInt64(at, BigInt(value as number | bigint), true);
      return;
    case "u64":
      view.setBigUint64(at, BigInt(value as number | bigint), true);
      return;
    case "char":
      view.setUint8(at, checkInt(value, name));
      return;
  }
}

function checkInt(value: FieldValue, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new Error(`field ${name} must be an integer, got ${value}`);
  return n;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
