/**
 * Streams, events and CUDA graphs as TypeScript objects (`[Symbol.dispose]`, with a
 * FinalizationRegistry backstop). A stream keeps every host array handed to one of its
 * asynchronous copies referenced until it is synchronized.
 */
import { KilnError } from "../errors.ts";
import { check, checkAsync, type NativeLibrary } from "./library.ts";

type Destroy =
  | "kiln_stream_destroy"
  | "kiln_event_destroy"
  | "kiln_graph_destroy"
  | "kiln_gate_destroy";

interface Owned {
  lib: NativeLibrary;
  handle: Deno.PointerObject;
  destroy: Destroy;
}

const registry = new FinalizationRegistry<Owned>(({ lib, handle, destroy }) => {
  lib.symbols[destroy](handle);
});

function created(lib: NativeLibrary, status: number, out: BigUint64Array, what: string) {
  check(lib, status, what);
  const p = Deno.UnsafePointer.create(out[0]);
  if (!p) throw new KilnError("NATIVE_ERROR", `${what} returned NULL`);
  return p;
}

/** Shared ownership logic of the three handle kinds. */
abstract class Handle implements Disposable {
  #handle: Deno.PointerObject | null;

  constructor(readonly lib: NativeLibrary, handle: Deno.PointerObject, readonly destroy: Destroy) {
    this.#handle = handle;
    registry.register(this, { lib, handle, destroy }, this);
  }

  get handle(): Deno.PointerObject {
    if (!this.#handle) {
      throw new KilnError("INVALID_ARGUMENT", `the ${this.constructor.name} has been destroyed`);
    }
    return this.#handle;
  }

  get disposed(): boolean {
    return this.#handle === null;
  }

  [Symbol.dispose](): void {
    if (!this.#handle) return;
    registry.unregister(this);
    const h = this.#handle;
    this.#handle = null;
    check(this.lib, this.lib.symbols[this.destroy](h), this.destroy);
  }
}

export class Stream extends Handle {
  /** Host arrays in flight: released at the next synchronize. */
  #held: unknown[] = [];

  private constructor(lib: NativeLibrary, handle: Deno.PointerObject, readonly device: number) {
    super(lib, handle, "kiln_stream_destroy");
  }

  static create(lib: NativeLibrary, device: number): Stream {
    const out = new BigUint64Array(1);
    const h = created(
      lib,
      lib.symbols.kiln_stream_create(device, out),
      out,
      `creating a stream on cuda:${device}`,
    );
    return new Stream(lib, h, device);
  }

  /** Keeps `value` referenced until the stream is next synchronized. */
  hold(value: unknown): void {
    this.#held.push(value);
  }

  copyAsync(dst: Deno.PointerValue, src: Deno.PointerValue, bytes: number): void {
    check(
      this.lib,
      this.lib.symbols.kiln_memcpy_async(dst, src, BigInt(bytes), this.handle),
      "kiln_memcpy_async",
    );
  }

  /** Asynchronous host → device copy from a typed array, held until synchronize. */
  copyFromHostAsync(dst: Deno.PointerValue, src: ArrayBufferView): void {
    const bytes = new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    this.hold(bytes);
    check(
      this.lib,
      this.lib.symbols.kiln_memcpy_async_host(dst, bytes, BigInt(bytes.length), this.handle),
      "kiln_memcpy_async",
    );
  }

  memsetAsync(dst: Deno.PointerValue, byteValue: number, bytes: number): void {
    check(
      this.lib,
      this.lib.symbols.kiln_memset_async(dst, byteValue, BigInt(bytes), this.handle),
      "kiln_memset_async",
    );
  }

  /** Blocks until the stream's work is done (short work: no thread hop). */
  synchronize(): void {
    const st = this.lib.symbols.kiln_stream_synchronize(this.handle);
    this.#held.length = 0;
    check(this.lib, st, "kiln_stream_synchronize");
  }

  /** Waits on a worker thread (long work: keeps the event loop free, costs ~20 µs). */
  async synchronizeAsync(): Promise<void> {
    const st = await this.lib.symbols.kiln_stream_synchronize_async(this.handle);
    this.#held.length = 0;
    checkAsync(this.lib, st, "kiln_stream_synchronize");
  }

  /** Whether all enqueued work has completed. */
  query(): boolean {
    const done = new Int32Array(1);
    check(this.lib, this.lib.symbols.kiln_stream_query(this.handle, done), "kiln_stream_query");
    if (done[0]) this.#held.length = 0;
    return done[0] === 1;
  }

  beginCapture(): void {
    check(
      this.lib,
      this.lib.symbols.kiln_stream_begin_capture(this.handle),
      "kiln_stream_begin_capture",
    );
  }

  /** Ends a capture and instantiates it; on failure the capture is discarded. */
  endCapture(): Graph {
    const out = new BigUint64Array(1);
    const h = created(
      this.lib,
      this.lib.symbols.kiln_stream_end_capture(this.handle, out),
      out,
      "kiln_stream_end_capture",
    );
    return new Graph(this.lib, h);
  }

  override [Symbol.dispose](): void {
    if (this.disposed) return;
    super[Symbol.dispose]();
    this.#held.length = 0;
  }
}

export class Event extends Handle {
  private constructor(lib: NativeLibrary, handle: Deno.PointerObject) {
    super(lib, handle, "kiln_event_destroy");
  }

  static create(lib: NativeLibrary, device: number, timing = true): Event {
    const out = new BigUint64Array(1);
    const h = created(
      lib,
      lib.symbols.kiln_event_create(device, timing ? 1 : 0, out),
      out,
      `creating an event on cuda:${device}`,
    );
    return new Event(lib, h);
  }

  record(stream: Stream): void {
    check(
      this.lib,
      this.lib.symbols.kiln_event_record(this.handle, stream.handle),
      "kiln_event_record",
    );
  }

  synchronize(): void {
    check(this.lib, this.lib.symbols.kiln_event_synchronize(this.handle), "kiln_event_synchronize");
  }

  /** Milliseconds from `this` to `end` (both recorded and completed). */
  elapsedMs(end: Event): number {
    const ms = new Float32Array(1);
    check(
      this.lib,
      this.lib.symbols.kiln_event_elapsed_ms(this.handle, end.handle, ms),
      "kiln_event_elapsed_ms",
    );
    return ms[0];
  }
}

/** An instantiated CUDA graph. */
export class Graph extends Handle {
  constructor(lib: NativeLibrary, handle: Deno.PointerObject) {
    super(lib, handle, "kiln_graph_destroy");
  }

  launch(stream: Stream): void {
    check(
      this.lib,
      this.lib.symbols.kiln_graph_launch(this.handle, stream.handle),
      "kiln_graph_launch",
    );
  }
}

/**
 * Holds a stream while work is enqueued behind it, so the work then runs back to back on the GPU
 * without host launch gaps (per-layer profiles, device timing). `close` enqueues the wait, `open`
 * releases it; the native side never holds a stream longer than a second.
 */
export class Gate extends Handle {
  private constructor(lib: NativeLibrary, handle: Deno.PointerObject) {
    super(lib, handle, "kiln_gate_destroy");
  }

  static create(lib: NativeLibrary): Gate {
    const out = new BigUint64Array(1);
    return new Gate(lib, created(lib, lib.symbols.kiln_gate_create(out), out, "kiln_gate_create"));
  }

  close(stream: Stream): void {
    check(
      this.lib,
      this.lib.symbols.kiln_gate_close(this.handle, stream.handle),
      "kiln_gate_close",
    );
  }

  open(): void {
    check(this.lib, this.lib.symbols.kiln_gate_open(this.handle), "kiln_gate_open");
  }

  /** Runs `enqueue` with the stream held, then releases it (also when `enqueue` throws). */
  around<T>(stream: Stream, enqueue: () => T): T {
    this.close(stream);
    try {
      return enqueue();
    } finally {
      this.open();
    }
  }
}
