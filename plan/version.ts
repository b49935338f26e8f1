/** Versions written into every plan. */
export const KILN_VERSION = "0.1.0";
/**
 * Bumped whenever the plan layout or the manifest's meaning changes. 2: tensor views (concat
 * elision), aliases (constants, reshapes), per-tensor precisions and scales, per-layer tactics —
 * fields a version-1 reader would ignore and then compute wrongly.
 */
export const PLAN_FORMAT_VERSION = 2;
export const PLAN_MAGIC = "KILNPLAN";
