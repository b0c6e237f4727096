/**
 * Version information, baked in at build time by packaging/compile.ts.
 * @module
 */

/** The agent's version. */
export const VERSION = "0.1.0";
/** The git commit the binary was built from ("dev" when run from source). */
export const GIT_COMMIT = "dev";
