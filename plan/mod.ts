export {
  align,
  inspectPlan,
  type PlanData,
  type PlanDevice,
  readPlan,
  sha256Hex,
  WEIGHT_ALIGNMENT,
  writePlan,
} from "./format.ts";
export type { Manifest, ManifestLayer, PlanHeader, WeightRef } from "./manifest.ts";
export { KILN_VERSION, PLAN_FORMAT_VERSION } from "./version.ts";
