import assert from "node:assert/strict";
import { globBase, globToRegExp } from "../../mod/sources/file_glob.ts";

Deno.test("globToRegExp() matches within a segment, across segments with **, classes and braces", () => {
  const m = (glob: string, path: string) => globToRegExp(glob).test(path);
  assert.ok(m("/var/log/*.log", "/var/log/app.log"));
  assert.ok(!m("/var/log/*.log", "/var/log/a/app.log"));
  assert.ok(m("/var/log/app.log*", "/var/log/app.log.1.gz"));
  assert.ok(m("/var/log/**/*.log", "/var/log/app.log"));
  assert.ok(m("/var/log/**/*.log", "/var/log/a/b/app.log"));
  assert.ok(m("/var/log/app.log.[0-9]", "/var/log/app.log.3"));
  assert.ok(!m("/var/log/app.log.[!0-9]", "/var/log/app.log.3"));
  assert.ok(m("/var/log/{app,web}.log", "/var/log/web.log"));
  assert.ok(!m("/var/log/{app,web}.log", "/var/log/db.log"));
  assert.ok(m("/var/log/a?.log", "/var/log/ab.log"));
  assert.ok(!m("/var/log/a?.log", "/var/log/a/.log"));
  assert.ok(!m("/var/log/app.log", "/var/log/appxlog"), "a dot is literal");
});

Deno.test("globBase() is the directory before the first pattern segment, and the depth below it", () => {
  assert.deepEqual(globBase("/var/log/app/*.log"), { base: "/var/log/app", depth: 1 });
  assert.deepEqual(globBase("/var/log/*/x.log"), { base: "/var/log", depth: 2 });
  assert.deepEqual(globBase("/var/log/**/x.log"), { base: "/var/log", depth: Infinity });
  assert.deepEqual(globBase("/var/log/app.log"), { base: "/var/log", depth: 1 });
  assert.deepEqual(globBase("/*.log"), { base: "/", depth: 1 });
});
