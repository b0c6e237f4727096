/** One line of the benchmark table. */
export interface BenchRow {
  name: string;
  /** Decompressed (or payload) megabytes per second; 1 MB = 1e6 bytes. */
  mbPerSec: number;
  note?: string;
  [k: string]: unknown;
}
