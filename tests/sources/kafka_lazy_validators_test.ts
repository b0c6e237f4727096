// The Kafka library's option validators compile on first use (mod/sources/kafka_lazy_validators.ts):
// they still judge options as ajv does, and ajv is eager again once the library is imported.
import assert from "node:assert/strict";
import "../../mod/sources/kafka_client.ts";
import { Admin } from "@platformatic/kafka";
import { Ajv2020 } from "ajv/dist/2020.js";

Deno.test("a lazy validator of the library still refuses bad options, naming them (strict mode)", async () => {
  assert.throws(
    () =>
      new Admin({ clientId: "t", bootstrapBrokers: ["127.0.0.1:9"], strict: true, timeout: -5 }),
    /\/options\/timeout must be >= 0/,
  );
  const ok = new Admin({ clientId: "t", bootstrapBrokers: ["127.0.0.1:9"], strict: true });
  await ok.close();
});

Deno.test("ajv compiles eagerly again once the library is imported", () => {
  const validate = new Ajv2020().compile({ type: "object" });
  // ajv's own validators carry their schema; the lazy ones do not.
  assert.deepEqual(validate.schema, { type: "object" });
  assert.equal(validate({}), true);
  assert.equal(validate(1), false);
});
