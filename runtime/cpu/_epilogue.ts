/** The fused epilogue of Convolution/Deconvolution/FullyConnected/MatrixMultiply on the CPU. */
import type { ActivationSpec } from "../../dsl/layers/_epilogue.ts";
import { applyActivation } from "./activation.ts";
import type { HostTensor } from "./_kernel.ts";

export interface EpilogueAttrs {
  activation?: ActivationSpec;
  residual?: "pre" | "post";
}

/**
 * y = act(y [+ residual if "pre"]) [+ residual if "post"]; the bias is added by the caller
 * (its layout depends on the op). `residual` is the layer's last input when present.
 */
export function applyEpilogue(attrs: EpilogueAttrs, y: Float32Array, residual?: HostTensor): void {
  const r = residual?.data as Float32Array | undefined;
  if (r && attrs.residual === "pre") { for (let i = 0; i < y.length; i++) y[i] += r[i]; }
  if (attrs.activation) applyActivation(attrs.activation, y);
  if (r && attrs.residual === "post") { for (let i = 0; i < y.length; i++) y[i] += r[i]; }
}
