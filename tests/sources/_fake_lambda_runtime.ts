// A fake AWS Lambda Runtime API endpoint for tests (not AWS's; written here from the Runtime API
// reference): GET /2018-06-01/runtime/invocation/next long-polls until the test invokes, with the
// Lambda-Runtime-* headers; POST .../invocation/{id}/response and .../error record the answer;
// POST .../init/error records an init failure. Real HTTP on a loopback port.

/** How an invocation was answered. */
export interface Answer {
  kind: "response" | "error";
  body: unknown;
  /** Lambda-Runtime-Function-Error-Type, for errors. */
  errorType?: string;
}

/** Start the fake runtime; `api` is the value of AWS_LAMBDA_RUNTIME_API. */
export function startFakeRuntime() {
  const queue: { id: string; event: unknown; deadline: number }[] = [];
  let wake: (() => void) | undefined;
  const answers = new Map<string, (a: Answer) => void>();
  const initErrors: unknown[] = [];
  let seq = 0;
  let closed = false;
  let close!: () => void;
  const closing = new Promise<void>((r) => close = r);
  const prefix = "/2018-06-01/runtime";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "GET" && path === `${prefix}/invocation/next`) {
      while (queue.length === 0) {
        await Promise.race([new Promise<void>((r) => wake = r), closing]);
        if (closed) return new Response(null, { status: 503 });
      }
      const inv = queue.shift()!;
      return new Response(JSON.stringify(inv.event), {
        headers: {
          "content-type": "application/json",
          "lambda-runtime-aws-request-id": inv.id,
          "lambda-runtime-deadline-ms": String(inv.deadline),
          "lambda-runtime-invoked-function-arn":
            "arn:aws:lambda:us-east-1:123456789012:function:route",
          "lambda-runtime-trace-id": `Root=1-${inv.id}`,
        },
      });
    }
    const m = new RegExp(`^${prefix}/invocation/([^/]+)/(response|error)$`).exec(path);
    if (req.method === "POST" && m) {
      const done = answers.get(m[1]!);
      if (!done) return new Response("unknown request id", { status: 400 });
      const errorType = req.headers.get("lambda-runtime-function-error-type");
      done({
        kind: m[2] as Answer["kind"],
        body: await req.json(),
        ...(errorType && { errorType }),
      });
      return new Response(JSON.stringify({ status: "OK" }), { status: 202 });
    }
    if (req.method === "POST" && path === `${prefix}/init/error`) {
      initErrors.push(await req.json());
      return new Response(JSON.stringify({ status: "OK" }), { status: 202 });
    }
    return new Response("not found", { status: 404 });
  });
  const addr = server.addr as Deno.NetAddr;
  return {
    api: `127.0.0.1:${addr.port}`,
    initErrors,
    /** Queue an invocation; resolves with its answer. */
    invoke(event: unknown, { deadlineIn = 60_000 } = {}): Promise<Answer> {
      const id = `req-${++seq}`;
      const answered = new Promise<Answer>((r) => answers.set(id, r));
      queue.push({ id, event, deadline: Date.now() + deadlineIn });
      wake?.();
      return answered;
    },
    close: () => {
      closed = true;
      close();
      return server.shutdown();
    },
  };
}

/** A Lambda SQS event for messages `{ messageId, body }`. */
export function sqsEvent(queueArn: string, messages: { messageId: string; body: string }[]) {
  return {
    Records: messages.map((m) => ({
      messageId: m.messageId,
      receiptHandle: `rh-${m.messageId}`,
      body: m.body,
      attributes: { ApproximateReceiveCount: "1" },
      messageAttributes: {},
      eventSource: "aws:sqs",
      eventSourceARN: queueArn,
      awsRegion: "us-east-1",
    })),
  };
}
