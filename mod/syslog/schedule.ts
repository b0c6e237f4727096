/**
 * A sender's pacing against the run's absolute schedule: message k is due `phaseMs + k / rate`
 * after the first send, so what may go now is `rate × elapsed + 1` minus what went. A sender
 * that falls behind (a stall, a busy core) owes the difference and sends it as soon as it can,
 * a batch at a time, so time lost is made up; what it owes is capped at `catchUpMs` worth, and a
 * longer stall gives up the rest (counted in {@link Schedule.givenUp}) rather than flooding the
 * receiver. The clock starts at the first {@link Schedule.take}, not when the sender is built:
 * socket setup and thread start-up owe nothing.
 *
 * @example
 * ```ts
 * const s = new Schedule(50_000, () => performance.now());
 * const n = s.take(256); // messages to send now
 * ```
 * @module
 */

/** Options of {@link Schedule}. */
export interface ScheduleOptions {
  /**
   * When this sender's first message is due, after its first take (ms): senders of one run
   * interleave (sender i of w at total rate R: i / R s), so `rate` 1 over two senders sends one
   * message in the first second, not two.
   * @default 0
   */
  phaseMs?: number;
  /** Most time's worth of messages owed after a stall; the rest is given up (ms). @default 1000 */
  catchUpMs?: number;
}

/** The schedule of one sender on a millisecond clock. */
export class Schedule {
  readonly rate: number;
  readonly #now: () => number;
  readonly #phase: number;
  /** Most messages owed at once (≥ 1). */
  readonly #cap: number;
  #start: number | undefined;
  #taken = 0;
  #givenUp = 0;

  /**
   * @param rate messages per second (> 0).
   * @param now a monotonic clock in milliseconds.
   * @throws {RangeError} on a rate or catchUpMs that is not positive.
   */
  constructor(
    rate: number,
    now: () => number,
    { phaseMs = 0, catchUpMs = 1000 }: ScheduleOptions = {},
  ) {
    if (!(rate > 0)) throw new RangeError(`rate must be positive: got ${rate}`);
    if (!(catchUpMs > 0)) throw new RangeError(`catchUpMs must be positive: got ${catchUpMs}`);
    this.rate = rate;
    this.#now = now;
    this.#phase = Math.max(0, phaseMs);
    this.#cap = Math.max(1, Math.ceil((rate * catchUpMs) / 1000));
  }

  /** When the first take was (the clock's time), undefined before. */
  get startedAt(): number | undefined {
    return this.#start;
  }

  /** Messages given up after stalls longer than `catchUpMs`. */
  get givenUp(): number {
    return this.#givenUp;
  }

  /** Messages due now and not yet taken (at most `catchUpMs` worth; 0 before the first take). */
  get owed(): number {
    return this.owedBefore(Infinity);
  }

  /**
   * Messages due now and not yet taken, of those due before `end` (the run's end: none due at
   * or after it, all due before it, even once it has passed).
   */
  owedBefore(end: number): number {
    if (this.#start === undefined) return 0;
    const origin = this.#start + this.#phase;
    // Message k is due at origin + k / rate: at or before t, floor(...) + 1 of them; before end,
    // ceil(...).
    const now = this.#now() - origin;
    let due = now < 0 ? 0 : Math.floor((now * this.rate) / 1000) + 1;
    if (end !== Infinity) {
      const last = end - origin;
      // Less a hair: start + duration − start is not always the duration in floating point, and
      // a message due at the end itself is not before it.
      due = Math.min(due, last <= 0 ? 0 : Math.ceil((last * this.rate) / 1000 - 1e-6));
    }
    let owed = due - this.#givenUp - this.#taken;
    if (owed > this.#cap) {
      this.#givenUp += owed - this.#cap;
      owed = this.#cap;
    }
    return Math.max(0, owed);
  }

  /**
   * Start the clock at `at` (the clock's time; by default now), unless it started: a caller that
   * counts the run's end from its own reading of the clock starts the schedule at that reading.
   */
  start(at = this.#now()): void {
    this.#start ??= at;
  }

  /**
   * Take up to `max` of the messages due now (the first take starts the clock), only of those due
   * before `end` if given.
   */
  take(max: number, end = Infinity): number {
    this.#start ??= this.#now();
    const n = Math.min(max, this.owedBefore(end));
    this.#taken += n;
    return n;
  }

  /** Milliseconds until `n` more messages are due (0 if they are, or before the first take). */
  msUntil(n: number): number {
    if (this.#start === undefined) return 0;
    const owed = this.owed;
    if (owed >= n) return 0;
    // Message number k (from 0) is due at start + phase + k / rate.
    const k = this.#taken + this.#givenUp + n - 1;
    return Math.max(0, this.#start + this.#phase + (k * 1000) / this.rate - this.#now());
  }
}
