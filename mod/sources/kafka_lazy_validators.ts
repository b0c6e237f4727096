/**
 * Compile `@platformatic/kafka`'s option validators when first used, not when the library is
 * imported. The library compiles 38 JSON schemas with ajv at import time (its one entry point
 * also loads the clients we never create), which was about half of the import: 480–560 ms →
 * 250–300 ms for ajv and the library together on this 2-core machine, quiet. The library runs its
 * validators only for clients created with `strict: true`, which the agent does not set (its own
 * config spec validates first), so none is ever compiled. Every Kafka mode starts this much sooner
 * (`ingest` jobs take seconds: start-up is a good part of them).
 *
 * Import this module before the library (kafka_client.ts does), and call
 * {@link endLazyValidators} once the library is imported: from then on ajv compiles as it always
 * does. A lazy validator is a function that compiles the schema on its first call, then behaves as
 * ajv's validator (its result, and `errors` copied after each call, which is all the library
 * reads). Safe for the library's schemas because none refers to another (`$ref`, `$id`): compiling
 * one later cannot change another. The one the agent does use (a consumer's group options, checked
 * whatever `strict` says) is compiled without checking it against JSON Schema's meta-schema: the
 * library's schemas are fixed in its code, and that check compiled the meta-schema first (first
 * consumer created in 76–111 ms → 30–38 ms).
 * @module
 */

import { Ajv2020 } from "ajv/dist/2020.js";

type Validate = ((data: unknown) => boolean) & { errors?: unknown };
type Compile = (this: unknown, schema: unknown, meta?: boolean) => Validate;

const core = Object.getPrototypeOf(Ajv2020.prototype) as { compile: Compile };
const eager = core.compile;

core.compile = function (this: unknown, schema: unknown, meta?: boolean): Validate {
  return lazyValidator(this, schema, meta);
};

/** A validator that compiles `schema` with `ajv` on its first call. */
function lazyValidator(ajv: unknown, schema: unknown, meta?: boolean): Validate {
  let compiled: Validate | undefined;
  const validate: Validate = function (this: unknown, data: unknown) {
    if (!compiled) {
      // The library's own schemas, fixed in its code: not checked against JSON Schema's
      // meta-schema, whose compilation alone cost ~80 ms at the first consumer.
      (ajv as { opts: { validateSchema?: boolean } }).opts.validateSchema = false;
      compiled = eager.call(ajv, schema, meta);
    }
    const valid = compiled.call(this, data);
    validate.errors = compiled.errors;
    return valid;
  };
  return validate;
}

/** From now on ajv compiles when asked (validators made so far stay lazy). */
export function endLazyValidators(): void {
  core.compile = eager;
}
