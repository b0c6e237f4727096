import * as k from "@platformatic/kafka";
import { Buffer } from "node:buffer";
import { crc32c, encodeRecordBatch } from "./mod/sinks/kafka_record_batch.ts";
const b = new Uint8Array(1 << 20).map((_, i) => i * 7 + (i >> 9));
console.log(crc32c(b), (k as any).jsCRC32C(Buffer.from(b)), crc32c(new TextEncoder().encode("123456789")).toString(16));
let t = performance.now(); for (let i = 0; i < 50; i++) crc32c(b); console.log("mine 50MB ms", performance.now() - t);
// compare a batch with platformatic's encoder
const msgs = [{ key: "k", value: "v1", headers: { a: "b" } }, { key: "k", value: "hello", headers: { a: "b" } }, { value: null }];
const mine = encodeRecordBatch(msgs as any, { producerId: 5n, producerEpoch: 1, baseSequence: 7, timestamp: 1000 });
const theirs = (k as any).createRecordsBatch([
  { key: Buffer.from("k"), value: Buffer.from("v1"), headers: new Map([[Buffer.from("a"), Buffer.from("b")]]), topic: "t", timestamp: 1000n },
  { key: Buffer.from("k"), value: Buffer.from("hello"), headers: new Map([[Buffer.from("a"), Buffer.from("b")]]), topic: "t", timestamp: 1000n },
  { topic: "t", timestamp: 1000n },
], { producerId: 5n, producerEpoch: 1, firstSequence: 7, sequences: new Map(), compression: "none", partitionLeaderEpoch: -1 }).buffer;
console.log(Buffer.from(mine).toString("hex"));
console.log(Buffer.from(theirs).toString("hex"));
