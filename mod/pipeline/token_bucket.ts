/**
 * Rate control: a token bucket filled continuously from a monotonic clock. Tokens accrue at
 * `rate` per second up to `burst`; a sender takes what it may send now and sleeps until the next
 * step's worth has accrued. Since tokens are computed from elapsed time (not counted ticks),
 * there is no drift: over any window the bucket allows `rate × window + burst` messages.
 *
 * @example
 * ```ts
 * const b = new TokenBucket(50_000, 500, () => performance.now());
 * const n = b.take(256); // messages to send now
 * ```
 * @module
 */

/** A token bucket on a millisecond clock. */
export class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  /**
   * @param rate tokens per second (> 0).
   * @param burst most tokens kept when the sender falls behind (≥ 1).
   * @param now a monotonic clock in milliseconds.
   */
  constructor(rate: number, burst: number, now: () => number) {
    if (!(rate > 0)) throw new RangeError(`rate must be positive: got ${rate}`);
    this.rate = rate;
    this.burst = Math.max(1, burst);
    this.#now = now;
    this.#tokens = 0;
    this.#last = now();
  }

  #refill(): void {
    const t = this.#now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((t - this.#last) * this.rate) / 1000);
    this.#last = t;
  }

  /** Take up to `max` whole tokens; returns how many were taken (0 when none has accrued). */
  take(max: number): number {
    this.#refill();
    const n = Math.min(max, Math.floor(this.#tokens));
    this.#tokens -= n;
    return n;
  }

  /** Milliseconds until `n` whole tokens will be there (0 if they are). */
  msUntil(n: number): number {
    this.#refill();
    const missing = Math.min(n, this.burst) - this.#tokens;
    return missing <= 0 ? 0 : (missing * 1000) / this.rate;
  }
}
