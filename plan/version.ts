/** Versions written into every plan. */
export const KILN_VERSION = "0.1.0";
/** Bumped whenever the plan layout or the manifest's meaning changes. */
export const PLAN_FORMAT_VERSION = 1;
export const PLAN_MAGIC = "KILNPLAN";
