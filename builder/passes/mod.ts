/** The build's passes, in the order they run. */
import type { Pass } from "../pass.ts";
import { elideConcat } from "./elide_concat.ts";
import { eliminateUnused } from "./eliminate_unused.ts";
import { foldConstants } from "./fold_constants.ts";
import { foldScale } from "./fold_scale.ts";
import { fuseElementwiseChain } from "./fuse_elementwise.ts";
import { fuseEpilogue } from "./fuse_epilogue.ts";
import { fuseHorizontal } from "./fuse_horizontal.ts";
import { fuseMlp } from "./fuse_mlp.ts";
import { removeIdentity } from "./remove_identity.ts";

export const PASSES: readonly Pass[] = [
  removeIdentity,
  foldConstants,
  eliminateUnused,
  foldScale,
  fuseEpilogue,
  fuseMlp,
  fuseElementwiseChain,
  fuseHorizontal,
  elideConcat,
];
