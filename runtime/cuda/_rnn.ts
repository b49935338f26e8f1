/**
 * RNNv2 on the GPU (cuda/src/kernels/rnn_v2.cu): the kernel-table entry that gathers each gate's
 * weight slots into the pointer table kiln_launch_rnn_v2 reads, and sizes the workspace (hidden
 * state ping-pong, the inter-layer output, the projections of every step) at the largest batch.
 */
import { concreteDims } from "../../dsl/ir/dims.ts";
import {
  directionsOf,
  gateSlot,
  optionalInputIndex,
  RNN_GATES,
  type RnnAttrs,
} from "../../dsl/layers/rnn_v2.ts";
import { RNN_OP_CODE, RNN_V2_PARAMS } from "../../ffi/mod.ts";
import type { Manifest, ManifestLayer } from "../../plan/mod.ts";
import { type CudaKernel, float32Weights, launch } from "./_launch.ts";

const align256 = (bytes: number) => Math.ceil(bytes / 256) * 256;

/**
 * Workspace bytes of kiln_launch_rnn_v2 (the same regions as `workspace_of` in rnn_v2.cu, which
 * refuses a smaller workspace): two hidden-state buffers [dirs, n, H], the inter-layer output
 * [n, t, dirs·H] when stacked, the projections [n·t, dirs, gates, H] when t > 1.
 */
export function rnnWorkspaceBytes(a: RnnAttrs, n: number, t: number): number {
  const h = a.hiddenSize, d = directionsOf(a), g = RNN_GATES[a.op].length;
  return 2 * align256(d * n * h * 4) + (a.layers > 1 ? align256(n * t * d * h * 4) : 0) +
    (t > 1 ? align256(n * t * d * g * h * 4) : 0);
}

export const rnnV2: CudaKernel = {
  unsupported: float32Weights,
  workspaceBytes(layer: ManifestLayer, manifest: Manifest): number {
    const dims = concreteDims(manifest.tensors[layer.inputs[0]].dims, manifest.maxBatchSize);
    return rnnWorkspaceBytes(layer.attrs as RnnAttrs, dims[0], dims[1]);
  },
  launch(a) {
    const at = a.layer.attrs as RnnAttrs;
    const [n, t, e] = a.inputs[0].dims;
    const dirs = directionsOf(at), gates = RNN_GATES[at.op];
    const idx = optionalInputIndex(at);
    // ((l·dirs + dir)·gates + g)·4 + part → device address (0 when absent), read during the call.
    const table = new BigUint64Array(at.layers * dirs * gates.length * 4);
    for (let li = 0; li < at.layers * dirs; li++) {
      gates.forEach((gate, g) => {
        (["W", "R", "bW", "bR"] as const).forEach((part, k) => {
          const p = a.weights[gateSlot(at, li, gate, part)];
          table[(li * gates.length + g) * 4 + k] = p ? BigInt(Deno.UnsafePointer.value(p)) : 0n;
        });
      });
    }
    const ptr = (i: number | undefined) => (i === undefined ? null : a.inputs[i].ptr);
    launch(
      a,
      "kiln_launch_rnn_v2",
      RNN_V2_PARAMS.pack({
        x: a.inputs[0].ptr,
        h0: ptr(idx.hiddenState),
        c0: ptr(idx.cellState),
        lengths: ptr(idx.sequenceLengths),
        y: a.outputs[0].ptr,
        h_out: a.outputs[1].ptr,
        c_out: at.op === "lstm" ? a.outputs[2].ptr : null,
        weights: Deno.UnsafePointer.of(table),
        workspace: a.workspace.ptr,
        workspace_bytes: a.workspace.bytes,
        op: RNN_OP_CODE[at.op],
        n,
        t,
        e,
        hidden: at.hiddenSize,
        layers: at.layers,
        dirs,
        skip_input: at.inputMode === "skip" ? 1 : 0,
      }),
    );
  },
};
