/**
 * Device and pinned host memory as TypeScript objects: freed by `[Symbol.dispose]` (or `using`),
 * with a FinalizationRegistry as the backstop for objects dropped without it.
 */
import { KilnError } from "../errors.ts";
import { check, type NativeLibrary } from "./library.ts";

interface Owned {
  lib: NativeLibrary;
  ptr: Deno.PointerObject;
}

const deviceRegistry = new FinalizationRegistry<Owned>(({ lib, ptr }) => {
  lib.symbols.kiln_free(ptr);
});
const hostRegistry = new FinalizationRegistry<Owned>(({ lib, ptr }) => {
  lib.symbols.kiln_host_free(ptr);
});

function outPointer(lib: NativeLibrary, status: number, out: BigUint64Array, what: string) {
  check(lib, status, what);
  return Deno.UnsafePointer.create(out[0]);
}

/** A device allocation of `bytes` bytes on one device. */
export class DeviceBuffer implements Disposable {
  #ptr: Deno.PointerObject | null;

  private constructor(
    readonly lib: NativeLibrary,
    readonly device: number,
    readonly bytes: number,
    ptr: Deno.PointerObject | null,
  ) {
    this.#ptr = ptr;
    if (ptr) deviceRegistry.register(this, { lib, ptr }, this);
  }

  static alloc(lib: NativeLibrary, device: number, bytes: number): DeviceBuffer {
    if (!(Number.isSafeInteger(bytes) && bytes >= 0)) {
      throw new KilnError("INVALID_ARGUMENT", `cannot allocate ${bytes} bytes`);
    }
    const out = new BigUint64Array(1);
    const ptr = outPointer(
      lib,
      lib.symbols.kiln_malloc(device, BigInt(bytes), out),
      out,
      `allocating ${bytes} bytes on cuda:${device}`,
    );
    return new DeviceBuffer(lib, device, bytes, ptr);
  }

  get disposed(): boolean {
    return this.#ptr === null && this.bytes > 0;
  }

  /** The device address `byteOffset` bytes in. */
  at(byteOffset = 0): Deno.PointerValue {
    if (this.disposed) throw new KilnError("INVALID_ARGUMENT", "the device buffer has been freed");
    if (byteOffset < 0 || byteOffset > this.bytes) {
      throw new KilnError(
        "INTERNAL",
        `offset ${byteOffset} is outside a ${this.bytes}-byte device buffer`,
      );
    }
    return byteOffset === 0 ? this.#ptr : Deno.UnsafePointer.offset(this.#ptr!, byteOffset);
  }

  /** Synchronous upload of host bytes at `byteOffset`. */
  upload(src: ArrayBufferView, byteOffset = 0): void {
    const n = src.byteLength;
    if (n === 0) return;
    if (byteOffset + n > this.bytes) {
      throw new KilnError("INTERNAL", `upload of ${n} bytes overruns a ${this.bytes}-byte buffer`);
    }
    const view = new Uint8Array(src.buffer, src.byteOffset, n);
    check(
      this.lib,
      this.lib.symbols.kiln_memcpy_to_device(this.at(byteOffset), view, BigInt(n)),
      "upload",
    );
  }

  /** Synchronous download into `dst` from `byteOffset`. */
  download(dst: ArrayBufferView, byteOffset = 0): void {
    const n = dst.byteLength;
    if (n === 0) return;
    if (byteOffset + n > this.bytes) {
      throw new KilnError(
        "INTERNAL",
        `download of ${n} bytes overruns a ${this.bytes}-byte buffer`,
      );
    }
    const view = new Uint8Array(dst.buffer, dst.byteOffset, n);
    check(
      this.lib,
      this.lib.symbols.kiln_memcpy_to_host(view, this.at(byteOffset), BigInt(n)),
      "download",
    );
  }

  [Symbol.dispose](): void {
    if (!this.#ptr) return;
    deviceRegistry.unregister(this);
    const ptr = this.#ptr;
    this.#ptr = null;
    check(this.lib, this.lib.symbols.kiln_free(ptr), "freeing device memory");
  }
}

/**
 * Page-locked host memory: the staging area of asynchronous copies (and of copies captured in
 * CUDA graphs). `bytes` views it directly; the view must not be used after disposal.
 */
export class PinnedBuffer implements Disposable {
  #ptr: Deno.PointerObject | null;
  #view: Uint8Array<ArrayBuffer> | null;

  private constructor(
    readonly lib: NativeLibrary,
    readonly size: number,
    ptr: Deno.PointerObject | null,
  ) {
    this.#ptr = ptr;
    this.#view = ptr
      ? new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(ptr, size))
      : new Uint8Array(0);
    if (ptr) hostRegistry.register(this, { lib, ptr }, this);
  }

  static alloc(lib: NativeLibrary, bytes: number): PinnedBuffer {
    if (!(Number.isSafeInteger(bytes) && bytes >= 0)) {
      throw new KilnError("INVALID_ARGUMENT", `cannot allocate ${bytes} pinned bytes`);
    }
    const out = new BigUint64Array(1);
    const ptr = outPointer(
      lib,
      lib.symbols.kiln_host_alloc(BigInt(bytes), out),
      out,
      `allocating ${bytes} bytes of pinned host memory`,
    );
    return new PinnedBuffer(lib, bytes, ptr);
  }

  /** The memory as bytes (valid until disposal). */
  get bytes(): Uint8Array<ArrayBuffer> {
    if (!this.#view) throw new KilnError("INVALID_ARGUMENT", "the pinned buffer has been freed");
    return this.#view;
  }

  at(byteOffset = 0): Deno.PointerValue {
    if (!this.#view) throw new KilnError("INVALID_ARGUMENT", "the pinned buffer has been freed");
    if (byteOffset < 0 || byteOffset > this.size) {
      throw new KilnError("INTERNAL", `offset ${byteOffset} is outside a ${this.size}-byte buffer`);
    }
    return byteOffset === 0 ? this.#ptr : Deno.UnsafePointer.offset(this.#ptr!, byteOffset);
  }

  [Symbol.dispose](): void {
    if (!this.#view) return;
    this.#view = null;
    if (!this.#ptr) return;
    hostRegistry.unregister(this);
    const ptr = this.#ptr;
    this.#ptr = null;
    check(this.lib, this.lib.symbols.kiln_host_free(ptr), "freeing pinned memory");
  }
}
