/**
 * Readiness of a mode's sources and sinks, and the last errors, for /readyz and /status.
 * @module
 */

/** One component's state. */
export interface ComponentState {
  ready: boolean;
  reason?: string;
  since: string;
}

/** A quarantined unit as /status lists it (see QuarantineRecord in pipeline/types.ts). */
export interface QuarantineEntry {
  id: string;
  reason: string;
  message: string;
  offset?: number;
  at: number;
}

/** Readiness by component; ready when every registered component is. */
export class Health {
  #components = new Map<string, ComponentState>();
  #quarantined: (QuarantineEntry & Record<string, unknown>)[] = [];
  #errors: { at: string; msg: string; fields?: Record<string, unknown> }[] = [];
  #maxErrors: number;

  constructor(maxErrors = 20) {
    this.#maxErrors = maxErrors;
  }

  /** Mark `component` ready or not, with a reason when not. */
  set(component: string, ready: boolean, reason?: string): void {
    const prev = this.#components.get(component);
    if (prev && prev.ready === ready && prev.reason === reason) return;
    this.#components.set(component, {
      ready,
      ...(reason !== undefined && { reason }),
      since: new Date().toISOString(),
    });
  }

  /** Forget a component (e.g. a finished one-shot). */
  delete(component: string): void {
    this.#components.delete(component);
  }

  /** Ready when at least one component registered and all are ready. */
  get ready(): boolean {
    if (this.#components.size === 0) return false;
    for (const c of this.#components.values()) if (!c.ready) return false;
    return true;
  }

  /** Why not ready: `component: reason` for each component that is not. */
  reasons(): string[] {
    if (this.#components.size === 0) return ["starting: no source or sink connected yet"];
    return [...this.#components]
      .filter(([, c]) => !c.ready)
      .map(([name, c]) => `${name}: ${c.reason ?? "not ready"}`);
  }

  components(): Record<string, ComponentState> {
    return Object.fromEntries(this.#components);
  }

  /** Remember an error for /status (bounded). */
  recordError(msg: string, fields?: Record<string, unknown>): void {
    this.#errors.push({ at: new Date().toISOString(), msg, ...(fields && { fields }) });
    if (this.#errors.length > this.#maxErrors) this.#errors.shift();
  }

  /** Remember a quarantined unit for /status (the most recent `maxErrors`). */
  recordQuarantine(entry: QuarantineEntry): void {
    this.#quarantined = this.#quarantined.filter((q) => q.id !== entry.id);
    this.#quarantined.push({ ...entry });
    if (this.#quarantined.length > this.#maxErrors) this.#quarantined.shift();
  }

  /** The most recently quarantined units, newest last, with `at` as an ISO time. */
  quarantined(): Record<string, unknown>[] {
    return this.#quarantined.map((q) => ({ ...q, at: new Date(q.at).toISOString() }));
  }

  lastErrors(): { at: string; msg: string; fields?: Record<string, unknown> }[] {
    return [...this.#errors];
  }
}
