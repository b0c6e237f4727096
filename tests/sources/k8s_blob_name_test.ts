import assert from "node:assert/strict";
import { parseBlobName } from "../../mod/sources/k8s_blob_name.ts";

Deno.test("parseBlobName() splits a Deployment pod's blob name", () => {
  assert.deepEqual(
    parseBlobName(
      "kubernetes/20250606.apache2-igc-674b9bdb88-vm775_default_proxy-931d71bdaa7b0a1b8b623ff1df112725c6b1d36789518820d232868fc02ee46e.gz",
    ),
    {
      date: "20250606",
      pod: "apache2-igc-674b9bdb88-vm775",
      namespace: "default",
      container: "proxy",
      service: "apache2-igc",
    },
  );
});

Deno.test("parseBlobName() strips only Kubernetes-generated suffixes", () => {
  const service = (pod: string) => parseBlobName(`kubernetes/20250606.${pod}_ns_c-1.gz`).service;
  assert.equal(service("api-gateway-7d9f8b6c5-x2kqp"), "api-gateway"); // Deployment
  assert.equal(service("fluent-bit-x2kqp"), "fluent-bit"); // DaemonSet
  assert.equal(service("zookeeper-0"), "zookeeper"); // StatefulSet
  assert.equal(service("worker"), "worker");
  assert.equal(service("api-gateway"), "api-gateway"); // "gateway" is not a hash
  assert.equal(service("orders-abcde"), "orders-abcde"); // vowels: not generated
  assert.equal(parseBlobName("plain.gz").service, "plain");
  assert.equal(parseBlobName("plain.gz").date, undefined);
});
