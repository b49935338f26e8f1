/**
 * Plugin: finds the layer's creator in the plugin registry and runs its CPU implementation
 * with the parsed params. The lookup and the parse are done once per loaded layer (the
 * manifest's attrs object is the cache key); an unregistered plugin is a KilnError naming the
 * layer and listing the registered plugins.
 */
import { type PluginAttrs, type PluginCpuArgs, resolvePlugin } from "../../dsl/layers/plugin.ts";
import { KilnError } from "../../errors.ts";
import type { CpuKernel, CpuKernelArgs } from "./_kernel.ts";

const resolved = new WeakMap<PluginAttrs, ReturnType<typeof resolvePlugin>>();

export const plugin: CpuKernel<PluginAttrs> = (args) => {
  let r = resolved.get(args.attrs);
  if (!r) {
    r = resolvePlugin(args.layer, args.attrs);
    resolved.set(args.attrs, r);
  }
  const { creator, params } = r;
  // A plugin receives exactly what built-in kernels receive, with its params as attrs.
  const pluginArgs: PluginCpuArgs<unknown> = { ...args, attrs: params } satisfies CpuKernelArgs<
    unknown
  >;
  try {
    creator.cpu(pluginArgs);
  } catch (e) {
    if (e instanceof KilnError) throw e;
    throw new KilnError(
      "INTERNAL",
      `Plugin layer "${args.layer}": plugin "${creator.name}" version "${creator.version}" ` +
        `failed on the CPU: ${e instanceof Error ? e.message : String(e)}`,
      { layer: args.layer, cause: e },
    );
  }
};
