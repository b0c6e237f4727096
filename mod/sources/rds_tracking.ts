/**
 * Per (instance, log file) tracking in DynamoDB, shared by every `discover` and `process`
 * replica. Table key: `instance` (partition, S) and `file` (sort, S); one Query reads an
 * instance's files.
 *
 * `discover` claims a change with a conditional write: the item moves from the size and
 * LastWritten it read to the new ones only if nobody changed it since, so of several replicas
 * that see the same change exactly one wins and publishes it. The claim also sets `pending` (the
 * claim's time, ms) until the event is confirmed published: a replica that dies between claim
 * and publish leaves it set, and a later scan publishes the change then (see `reclaim`).
 * `process` keeps its own progress in the same item (`marker`: where DownloadDBLogFilePortion
 * continues; `processed`: bytes read so far, for the S3 copy and for noticing rotation;
 * `parser_context`: the parser's state at the marker as JSON, see `ParserContext`), written
 * after the sink acknowledged each portion, conditionally on the marker the portion started from.
 * @module
 */

import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { awsClientConfig, type AwsConfig } from "./aws.ts";
import { awsErrorName } from "./aws_errors.ts";

/** What is tracked of one log file. */
export interface Tracked {
  size: number;
  /** LastWritten, ms since the epoch. */
  lastWritten: number;
  /** `process`: where the next DownloadDBLogFilePortion starts. */
  marker?: string;
  /** `process`: bytes of the file processed so far. */
  processed?: number;
  /** `process`: the parser's context at `marker` (JSON), to seed the next read's parser. */
  context?: string;
  /** `discover`: when a change was claimed whose event is not confirmed published (ms). */
  pending?: number;
  /** `discover`: the size before that claim. */
  pendingFrom?: number;
}

const N = (n: number): AttributeValue => ({ N: String(n) });
const S = (s: string): AttributeValue => ({ S: s });

/** The tracking table. */
export class LogTracking {
  readonly table: string;
  readonly #db: DynamoDBClient;
  readonly #sdk: typeof import("@aws-sdk/client-dynamodb");

  private constructor(
    sdk: typeof import("@aws-sdk/client-dynamodb"),
    db: DynamoDBClient,
    table: string,
  ) {
    this.#sdk = sdk;
    this.#db = db;
    this.table = table;
  }

  /**
   * Open the table (it must exist).
   *
   * @throws {Error} naming the table and the key schema it needs when it does not exist.
   */
  static async open(table: string, aws: AwsConfig): Promise<LogTracking> {
    const sdk = await import("@aws-sdk/client-dynamodb");
    const db = new sdk.DynamoDBClient(await awsClientConfig(aws));
    try {
      await db.send(new sdk.DescribeTableCommand({ TableName: table }));
    } catch (e) {
      if (awsErrorName(e) === "ResourceNotFoundException") {
        throw new Error(
          `tracking table ${table} does not exist: create it with partition key "instance" (S) and sort key "file" (S)`,
          { cause: e },
        );
      }
      throw new Error(`cannot reach tracking table ${table}`, { cause: e });
    }
    return new LogTracking(sdk, db, table);
  }

  /** Every tracked file of an instance. */
  async files(instance: string, signal?: AbortSignal): Promise<Map<string, Tracked>> {
    const out = new Map<string, Tracked>();
    let start: Record<string, AttributeValue> | undefined;
    do {
      const r = await this.#db.send(
        new this.#sdk.QueryCommand({
          TableName: this.table,
          KeyConditionExpression: "#i = :i",
          ExpressionAttributeNames: { "#i": "instance" },
          ExpressionAttributeValues: { ":i": S(instance) },
          ExclusiveStartKey: start,
          ConsistentRead: true,
        }),
        { abortSignal: signal },
      );
      for (const it of r.Items ?? []) out.set(it.file!.S!, fromItem(it));
      start = r.LastEvaluatedKey;
    } while (start);
    return out;
  }

  /** One file's tracking, if any. */
  async get(instance: string, file: string): Promise<Tracked | undefined> {
    const r = await this.#db.send(
      new this.#sdk.GetItemCommand({
        TableName: this.table,
        Key: { instance: S(instance), file: S(file) },
        ConsistentRead: true,
      }),
    );
    return r.Item ? fromItem(r.Item) : undefined;
  }

  /**
   * Move a file from `prev` (undefined: not tracked yet) to `next`, only if it is still `prev`.
   *
   * @returns false when another replica got there first.
   */
  async claim(
    instance: string,
    file: string,
    prev: Pick<Tracked, "size" | "lastWritten"> | undefined,
    next: Pick<Tracked, "size" | "lastWritten"> & { pending: number },
  ): Promise<boolean> {
    return await this.#conditional({
      TableName: this.table,
      Key: { instance: S(instance), file: S(file) },
      UpdateExpression: "SET #s = :s, #w = :w, #u = :u, #p = :p, #pf = :pf",
      ConditionExpression: prev ? "#s = :ps AND #w = :pw" : "attribute_not_exists(#s)",
      ExpressionAttributeNames: {
        "#s": "size",
        "#w": "last_written",
        "#u": "updated",
        "#p": "pending",
        "#pf": "pending_from",
      },
      ExpressionAttributeValues: {
        ":s": N(next.size),
        ":w": N(next.lastWritten),
        ":u": S(new Date().toISOString()),
        ":p": N(next.pending),
        ":pf": N(prev?.size ?? 0),
        ...(prev && { ":ps": N(prev.size), ":pw": N(prev.lastWritten) }),
      },
    });
  }

  /**
   * Take over a claim whose event was never confirmed published (its replica died in between):
   * only if it is still the claim of `pending`.
   *
   * @returns false when another replica took it over (or confirmed it) first.
   */
  async reclaim(instance: string, file: string, pending: number, now: number): Promise<boolean> {
    return await this.#conditional({
      TableName: this.table,
      Key: { instance: S(instance), file: S(file) },
      UpdateExpression: "SET #p = :now",
      ConditionExpression: "#p = :p",
      ExpressionAttributeNames: { "#p": "pending" },
      ExpressionAttributeValues: { ":p": N(pending), ":now": N(now) },
    });
  }

  /** The event of the claim made at `pending` was published. */
  async published(instance: string, file: string, pending: number): Promise<void> {
    await this.#conditional({
      TableName: this.table,
      Key: { instance: S(instance), file: S(file) },
      UpdateExpression: "REMOVE #p, #pf",
      ConditionExpression: "#p = :p",
      ExpressionAttributeNames: { "#p": "pending", "#pf": "pending_from" },
      ExpressionAttributeValues: { ":p": N(pending) },
    });
  }

  /** Drop a file RDS no longer lists (its item would otherwise be read on every scan forever). */
  async forget(instance: string, file: string): Promise<void> {
    await this.#db.send(
      new this.#sdk.DeleteItemCommand({
        TableName: this.table,
        Key: { instance: S(instance), file: S(file) },
      }),
    );
  }

  /** An update that may lose a race: false when its condition failed. */
  async #conditional(
    input: import("@aws-sdk/client-dynamodb").UpdateItemCommandInput,
  ): Promise<boolean> {
    try {
      await this.#db.send(new this.#sdk.UpdateItemCommand(input));
      return true;
    } catch (e) {
      if (awsErrorName(e) === "ConditionalCheckFailedException") return false;
      throw e;
    }
  }

  /** Undo a claim whose event could not be published (only if still ours). */
  async unclaim(
    instance: string,
    file: string,
    claimed: Pick<Tracked, "size" | "lastWritten">,
    prev: Pick<Tracked, "size" | "lastWritten"> | undefined,
  ): Promise<void> {
    try {
      await this.#db.send(
        new this.#sdk.UpdateItemCommand({
          TableName: this.table,
          Key: { instance: S(instance), file: S(file) },
          UpdateExpression: prev
            ? "SET #s = :ps, #w = :pw REMOVE #p, #pf"
            : "REMOVE #s, #w, #p, #pf",
          ConditionExpression: "#s = :s AND #w = :w",
          ExpressionAttributeNames: {
            "#s": "size",
            "#w": "last_written",
            "#p": "pending",
            "#pf": "pending_from",
          },
          ExpressionAttributeValues: {
            ":s": N(claimed.size),
            ":w": N(claimed.lastWritten),
            ...(prev && { ":ps": N(prev.size), ":pw": N(prev.lastWritten) }),
          },
        }),
      );
    } catch (e) {
      if (awsErrorName(e) !== "ConditionalCheckFailedException") throw e;
    }
  }

  /**
   * `process`: record where reading continues (after the sink acknowledged) and the parser's
   * `context` there (JSON; undefined: none, removed), only if the item still has the marker the
   * read started `from` (undefined: none yet) and is still tracked.
   *
   * @returns false when another reader moved the marker meanwhile (two members of the group
   *   read the same event during a rebalance) or the file was forgotten: the newer progress stays.
   */
  async saveProgress(
    instance: string,
    file: string,
    marker: string,
    processed: number,
    from: string | undefined,
    context?: string,
  ): Promise<boolean> {
    return await this.#conditional({
      TableName: this.table,
      Key: { instance: S(instance), file: S(file) },
      UpdateExpression: context === undefined
        ? "SET #m = :m, #p = :p REMOVE #c"
        : "SET #m = :m, #p = :p, #c = :c",
      ConditionExpression: from === undefined
        ? "attribute_exists(#s) AND attribute_not_exists(#m)"
        : "attribute_exists(#s) AND #m = :from",
      ExpressionAttributeNames: {
        "#m": "marker",
        "#p": "processed",
        "#s": "size",
        "#c": "parser_context",
      },
      ExpressionAttributeValues: {
        ":m": S(marker),
        ":p": N(processed),
        ...(context !== undefined && { ":c": S(context) }),
        ...(from !== undefined && { ":from": S(from) }),
      },
    });
  }
}

function fromItem(it: Record<string, AttributeValue>): Tracked {
  return {
    size: Number(it.size?.N ?? 0),
    lastWritten: Number(it.last_written?.N ?? 0),
    ...(it.marker?.S !== undefined && { marker: it.marker.S }),
    ...(it.processed?.N !== undefined && { processed: Number(it.processed.N) }),
    ...(it.parser_context?.S !== undefined && { context: it.parser_context.S }),
    ...(it.pending?.N !== undefined && { pending: Number(it.pending.N) }),
    ...(it.pending_from?.N !== undefined && { pendingFrom: Number(it.pending_from.N) }),
  };
}
