/**
 * The device-side generation loop of a CUDA context (BackendContext.executeLoop): the network
 * runs `steps` times with no host round trip per step.
 *
 * A step is the plan's layers followed by one kiln_launch_loop_copies kernel that copies each
 * fed-back output into its input and each collected output into a device buffer at the step's
 * offset. The step number lives in device memory (the kernel advances it), so one captured
 * graph serves every step: a graph of UNROLL steps is replayed ⌊steps / UNROLL⌋ times and a
 * one-step graph for the rest, all enqueued at once, then one synchronization and one download
 * per collected tensor. Graphs are cached per batch size, feedback and collect set.
 */
import { concreteDims, volume } from "../../dsl/ir/dims.ts";
import { bytesPerElement, type HostArray, newHostArray } from "../../dsl/ir/dtype.ts";
import { KilnError } from "../../errors.ts";
import {
  check,
  DeviceBuffer,
  type Graph,
  LOOP_COPIES_PARAMS,
  MAX_LOOP_COPIES,
  type NativeLibrary,
  type Stream,
} from "../../ffi/mod.ts";
import type { Manifest } from "../../plan/mod.ts";
import type { LoopRequest, LoopResult } from "../backend.ts";

/** Steps per replayed graph: fewer graph launches, each a little longer to capture. */
const UNROLL = 16;

/** What the loop needs from its context (runtime/cuda/backend.ts). */
export interface LoopHost {
  manifest: Manifest;
  /** Device address of tensor `t` in the context's arena. */
  tensorAt(t: number): Deno.PointerValue;
  /** Stages the host inputs and enqueues their copies into the arena. */
  uploadInputs(inputs: Map<number, HostArray>, batch: number): void;
  /** Enqueues every layer of one step (no binding copies). */
  enqueueLayers(batch: number): void;
  /** Enqueues the zeroing of the kernels' error words (before the first step). */
  clearErrors(): void;
  /** After the loop: throws the first data-dependent failure a kernel reported. */
  checkErrors(batch: number): void;
}

export class DeviceLoop implements Disposable {
  #counter: DeviceBuffer;
  #collect: DeviceBuffer | undefined;
  /** Copies of the sources that a feedback copy would overwrite mid-kernel (see `run`). */
  #staging: DeviceBuffer | undefined;
  #graphs = new Map<string, Graph>();

  constructor(readonly lib: NativeLibrary, readonly stream: Stream) {
    this.#counter = DeviceBuffer.alloc(lib, stream.device, 256);
  }

  async run(req: LoopRequest, host: LoopHost): Promise<LoopResult> {
    const { batchSize: batch, steps } = req;
    const copies = req.feedback.length + req.collect.length;
    if (copies > MAX_LOOP_COPIES) {
      throw new KilnError(
        "UNSUPPORTED",
        `executeLoop: ${copies} feedback and collect copies; the CUDA loop takes ${MAX_LOOP_COPIES}`,
      );
    }
    const m = host.manifest;
    const bytesOf = (t: number) =>
      volume(concreteDims(m.tensors[t].dims, batch)) * bytesPerElement(m.tensors[t].dtype);
    // Each collected tensor's region: `steps` values, 256-byte aligned.
    let offset = 0;
    const regions = req.collect.map((t) => {
      const r = { tensor: t, offset, bytes: bytesOf(t) };
      offset += Math.ceil((r.bytes * steps) / 256) * 256;
      return r;
    });
    if (!this.#collect || this.#collect.bytes < offset) {
      // The graphs hold the old buffer's addresses.
      this.#dropGraphs();
      this.#collect?.[Symbol.dispose]();
      this.#collect = undefined;
      this.#collect = DeviceBuffer.alloc(this.lib, this.stream.device, Math.max(offset, 256));
    }
    const collectBuffer = this.#collect;
    const address = (p: Deno.PointerValue) => BigInt(Deno.UnsafePointer.value(p));
    // The memory plan lets an output share bytes with an input that is dead by then (another
    // pair's feedback target). The copy kernel runs all copies at once, so a source that a
    // feedback copy overwrites is first copied aside on the stream, and read from there.
    const span = (t: number) => {
      const at = address(host.tensorAt(t));
      return [at, at + BigInt(bytesOf(t))] as const;
    };
    const targets = req.feedback.map(([, input]) => span(input));
    const endangered = [...new Set([...req.feedback.map(([out]) => out), ...req.collect])]
      .filter((t) => {
        const [a, b] = span(t);
        return targets.some(([c, d]) => a < d && c < b);
      });
    const staged = new Map<number, number>();
    let stagingBytes = 0;
    for (const t of endangered) {
      staged.set(t, stagingBytes);
      stagingBytes += Math.ceil(bytesOf(t) / 256) * 256;
    }
    if (stagingBytes && (!this.#staging || this.#staging.bytes < stagingBytes)) {
      this.#dropGraphs();
      this.#staging?.[Symbol.dispose]();
      this.#staging = undefined;
      this.#staging = DeviceBuffer.alloc(this.lib, this.stream.device, stagingBytes);
    }
    const staging = this.#staging;
    const source = (t: number) =>
      staged.has(t) ? address(staging!.at(staged.get(t)!)) : address(host.tensorAt(t));
    const table = new BigInt64Array(4 * copies);
    req.feedback.forEach(([out, input], i) => {
      table.set([
        source(out),
        address(host.tensorAt(input)),
        BigInt(bytesOf(out)),
        0n,
      ], 4 * i);
    });
    regions.forEach((r, k) => {
      const i = req.feedback.length + k;
      table.set([
        source(r.tensor),
        address(collectBuffer.at(r.offset)),
        BigInt(r.bytes),
        BigInt(r.bytes),
      ], 4 * i);
    });
    const params = LOOP_COPIES_PARAMS.pack({
      copies: Deno.UnsafePointer.of(table),
      counter: this.#counter.at(0),
      count: copies,
    });
    const tail = () =>
      check(
        this.lib,
        this.lib.symbols.kiln_launch_loop_copies(params, this.stream.handle),
        "kiln_launch_loop_copies",
      );
    const key = `${batch}|${req.feedback.join(";")}|${req.collect.join(",")}|${offset}|${
      [...staged].join(";")
    }`;
    const graph = (n: number) => {
      let g = this.#graphs.get(`${key}|${n}`);
      if (!g) {
        g = this.#capture(() => {
          for (let s = 0; s < n; s++) {
            host.enqueueLayers(batch);
            for (const [t, at] of staged) {
              this.stream.copyAsync(staging!.at(at), host.tensorAt(t), bytesOf(t));
            }
            tail();
          }
        });
        this.#graphs.set(`${key}|${n}`, g);
      }
      return g;
    };
    const unrolled = steps >= UNROLL ? graph(UNROLL) : undefined;
    const single = steps % UNROLL ? graph(1) : undefined;

    host.uploadInputs(req.inputs, batch);
    host.clearErrors();
    this.stream.memsetAsync(this.#counter.at(0), 0, 8);
    for (let s = 0; s + UNROLL <= steps; s += UNROLL) unrolled!.launch(this.stream);
    for (let s = 0; s < steps % UNROLL; s++) single!.launch(this.stream);
    await this.stream.synchronizeAsync();
    host.checkErrors(batch);

    const outputs = new Map<number, HostArray>();
    for (const r of regions) {
      const t = m.tensors[r.tensor];
      const out = newHostArray(t.dtype, (r.bytes / bytesPerElement(t.dtype)) * steps);
      collectBuffer.download(out, r.offset);
      outputs.set(r.tensor, out);
    }
    return { outputs };
  }

  #capture(enqueue: () => void): Graph {
    this.stream.beginCapture();
    try {
      enqueue();
    } catch (e) {
      try {
        this.stream.endCapture()[Symbol.dispose]();
      } catch {
        // the capture was invalidated by the failure: nothing to keep
      }
      throw e;
    }
    return this.stream.endCapture();
  }

  #dropGraphs(): void {
    for (const g of this.#graphs.values()) g[Symbol.dispose]();
    this.#graphs.clear();
  }

  [Symbol.dispose](): void {
    this.#dropGraphs();
    this.#collect?.[Symbol.dispose]();
    this.#collect = undefined;
    this.#staging?.[Symbol.dispose]();
    this.#staging = undefined;
    this.#counter[Symbol.dispose]();
  }
}

/** A profiled loop: one execute per step through the host (per-layer times need events). */
export async function loopByExecute(
  execute: (inputs: Map<number, HostArray>) => Promise<
    { outputs: Map<number, HostArray>; layerMs?: number[] }
  >,
  req: LoopRequest,
): Promise<LoopResult> {
  const inputs = new Map(req.inputs);
  const parts = req.collect.map(() => [] as HostArray[]);
  const layerMs: number[][] = [];
  for (let step = 0; step < req.steps; step++) {
    const r = await execute(inputs);
    if (r.layerMs) layerMs.push(r.layerMs);
    req.collect.forEach((t, i) => parts[i].push(r.outputs.get(t)!));
    for (const [out, input] of req.feedback) inputs.set(input, r.outputs.get(out)!);
  }
  const outputs = new Map<number, HostArray>();
  req.collect.forEach((t, i) => {
    const one = parts[i][0];
    const all = new (one.constructor as new (n: number) => HostArray)(req.steps * one.length);
    parts[i].forEach((p, step) => all.set(p as never, step * one.length));
    outputs.set(t, all);
  });
  return { outputs, layerMs };
}
