/**
 * For tests/pipeline/atomic_file_test.ts, run with the agent's permission set (`-P=agent`, where
 * Deno refuses /proc): prints how many temp files {@link removeStaleTemps} removed beside the
 * path given.
 * @module
 */
import { removeStaleTemps } from "../../mod/pipeline/atomic_file.ts";

const [path = ""] = Deno.args;
console.log(await removeStaleTemps(path));
