/**
 * The `sqs:` config of {@link ./s3_sqs.ts}, in a file of its own so that declaring it does not
 * load the AWS SDK (modes import specs at start-up; the SDK only when SQS is used).
 * @module
 */

import { f, type Infer } from "../config/spec.ts";

/** The `sqs:` config section. */
export const sqsSpec = f.object({
  queue_url: f.string({
    description: "SQS queue receiving the bucket's ObjectCreated notifications (direct or via SNS)",
    default: "",
    allowEmpty: true,
    example: "https://sqs.us-east-1.amazonaws.com/123456789012/log-events",
  }),
  wait_time: f.duration({ description: "Long-poll wait per receive", default: "20s", max: "20s" }),
  max_messages: f.int({ description: "Messages per receive", default: 10, min: 1, max: 10 }),
  visibility_timeout: f.duration({
    description: "Visibility of a received message; extended while its objects are in flight",
    default: "60s",
    min: "2s",
  }),
}, { description: "SQS discovery (discovery: sqs)" });

/** The `sqs:` config. */
export type SqsConfig = Infer<typeof sqsSpec>;
