/**
 * Plugin layers on the GPU: a creator's `enqueueCuda` hook receives device pointers, dims, the
 * context's stream and workspace, and enqueues its work, which the context's CUDA graph then
 * captures like any kernel. A creator without the hook is refused when the engine loads (so a
 * build for the GPU fails naming the layer), never at run time.
 */
import { type PluginAttrs, resolvePlugin } from "../../dsl/layers/plugin.ts";
import { KilnError } from "../../errors.ts";
import type { CudaKernel } from "./_launch.ts";

export const plugin: CudaKernel = {
  usesWorkspace: true,
  unsupported(layer) {
    let creator;
    try {
      creator = resolvePlugin(layer.name, layer.attrs as PluginAttrs).creator;
    } catch (e) {
      return (e as Error).message;
    }
    if (typeof creator.enqueueCuda !== "function") {
      return `plugin "${creator.name}" version "${creator.version}" has no CUDA implementation ` +
        `(its creator has no enqueueCuda); build the engine for the CPU or give the plugin one`;
    }
    return undefined;
  },
  launch(a) {
    const { creator, params } = resolvePlugin(a.layer.name, a.layer.attrs as PluginAttrs);
    const tensor = (t: { ptr: Deno.PointerValue; dims: number[]; dtype: string }) => ({
      ptr: t.ptr,
      dims: [...t.dims],
      dtype: t.dtype as never,
    });
    try {
      creator.enqueueCuda!({
        layer: a.layer.name,
        attrs: params,
        weights: { ...a.weights },
        inputs: a.inputs.map(tensor),
        outputs: a.outputs.map(tensor),
        stream: a.stream.handle,
        workspace: { ...a.workspace },
      });
    } catch (e) {
      if (e instanceof KilnError) throw e;
      throw new KilnError(
        "INTERNAL",
        `Plugin layer "${a.layer.name}": plugin "${creator.name}" version "${creator.version}" ` +
          `failed to enqueue on the GPU: ${e instanceof Error ? e.message : String(e)}`,
        { layer: a.layer.name, cause: e },
      );
    }
  },
};
