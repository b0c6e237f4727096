/**
 * The AWS Lambda Runtime API, for running as a custom runtime (`provided.al2023`, the compiled
 * binary as `bootstrap`): fetch the next invocation, answer it, or report its error. Lambda
 * freezes the process between invocations; nothing runs in the background then.
 *
 * @example
 * ```ts
 * await serveLambda(async (event, inv) => ({ ok: true, left: inv.deadline - Date.now() }), {
 *   api: Deno.env.get("AWS_LAMBDA_RUNTIME_API")!,
 *   log,
 *   signal,
 * });
 * ```
 * @module
 */

import { errorChain, type Logger } from "../log/logger.ts";

const VERSION = "2018-06-01";

/** One invocation. */
export interface Invocation {
  /** `Lambda-Runtime-Aws-Request-Id`. */
  requestId: string;
  /** `Lambda-Runtime-Deadline-Ms`: when Lambda kills the invocation, ms since epoch. */
  deadline: number;
  /** `Lambda-Runtime-Invoked-Function-Arn`. */
  functionArn?: string;
  /** `Lambda-Runtime-Trace-Id`. */
  traceId?: string;
  /** The event, parsed from JSON. */
  event: unknown;
}

/** A client of the Runtime API at `host:port` (the value of `AWS_LAMBDA_RUNTIME_API`). */
export class LambdaRuntime {
  readonly #base: string;

  /** @throws {TypeError} when `api` is empty. */
  constructor(api: string) {
    if (!api) {
      throw new TypeError(
        "AWS_LAMBDA_RUNTIME_API is not set: input lambda runs only inside AWS Lambda (use input sqs, manual or scan elsewhere)",
      );
    }
    this.#base = `http://${api}/${VERSION}/runtime`;
  }

  /**
   * Wait for the next invocation (a long poll: it returns when there is one).
   *
   * @throws {Error} when the Runtime API fails or the event is not JSON.
   */
  async next(signal?: AbortSignal): Promise<Invocation> {
    const res = await fetch(`${this.#base}/invocation/next`, signal ? { signal } : {});
    const text = await res.text();
    if (!res.ok) throw new Error(`Runtime API invocation/next: HTTP ${res.status}: ${text}`);
    const requestId = res.headers.get("lambda-runtime-aws-request-id");
    if (!requestId) {
      throw new Error("Runtime API invocation/next: no Lambda-Runtime-Aws-Request-Id");
    }
    const trace = res.headers.get("lambda-runtime-trace-id");
    if (trace) Deno.env.set("_X_AMZN_TRACE_ID", trace);
    let event: unknown;
    try {
      event = text === "" ? null : JSON.parse(text);
    } catch (e) {
      throw new Error(`invocation ${requestId}: event is not JSON`, { cause: e });
    }
    const fn = res.headers.get("lambda-runtime-invoked-function-arn");
    return {
      requestId,
      deadline: Number(res.headers.get("lambda-runtime-deadline-ms") ?? Date.now() + 900_000),
      ...(fn && { functionArn: fn }),
      ...(trace && { traceId: trace }),
      event,
    };
  }

  /** Answer an invocation with a JSON result. */
  async respond(requestId: string, result: unknown): Promise<void> {
    await this.#post(`invocation/${requestId}/response`, result);
  }

  /** Report an invocation's failure (Lambda retries or fails the whole batch). */
  async fail(requestId: string, error: unknown): Promise<void> {
    await this.#post(`invocation/${requestId}/error`, errorBody(error), errorType(error));
  }

  /** Report a failure before the first invocation (bad config): Lambda records it and exits. */
  async initError(error: unknown): Promise<void> {
    await this.#post("init/error", errorBody(error), errorType(error));
  }

  async #post(path: string, body: unknown, type?: string): Promise<void> {
    const res = await fetch(`${this.#base}/${path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(type && { "Lambda-Runtime-Function-Error-Type": type }),
      },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`Runtime API ${path}: HTTP ${res.status}: ${text}`);
  }
}

function errorType(e: unknown): string {
  return `Runtime.${e instanceof Error ? e.name : "Error"}`;
}

function errorBody(e: unknown) {
  return { errorMessage: errorChain(e), errorType: errorType(e), stackTrace: [] };
}

/** Options for {@link serveLambda}. */
export interface ServeLambdaOptions {
  /** `AWS_LAMBDA_RUNTIME_API` (host:port). */
  api: string;
  log: Logger;
  /** Aborting stops after the current invocation is answered. */
  signal: AbortSignal;
}

/**
 * Serve invocations with `handler` until `signal` aborts: each result is posted as the
 * invocation's response, each thrown error as its error.
 *
 * @returns how many invocations were served.
 */
export async function serveLambda(
  handler: (event: unknown, invocation: Invocation) => Promise<unknown>,
  { api, log, signal }: ServeLambdaOptions,
): Promise<number> {
  const runtime = new LambdaRuntime(api);
  let served = 0;
  while (!signal.aborted) {
    let inv: Invocation;
    try {
      inv = await runtime.next(signal);
    } catch (e) {
      if (signal.aborted) break;
      throw new Error("Lambda Runtime API unavailable", { cause: e });
    }
    served++;
    try {
      const result = await handler(inv.event, inv);
      await runtime.respond(inv.requestId, result);
    } catch (e) {
      log.error("invocation failed", { request_id: inv.requestId, error: e });
      await runtime.fail(inv.requestId, e);
    }
  }
  return served;
}
