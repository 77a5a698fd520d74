/**
 * What the batcher did for one model, from the status's `batching.models`: per loaded
 * version, the rows of each worker call (the batch size) and each request's wait in the
 * queue, as histograms the panel draws as bars.
 *
 * Pure functions (no DOM) so the jest tests cover them.
 */

import { formatMs } from './status';
import { word } from './words';

/** A histogram of the status: cumulative `[upper bound, count]` buckets, ending at `+Inf`. */
export interface IHistogramDoc {
  buckets?: Array<[string, number]> | null;
  sum?: number;
  count?: number;
}

/** One model version's entry in the status's `batching.models` (keyed `name/version`). */
export interface IBatchingDoc {
  model?: string;
  version?: number | null;
  requests?: number;
  worker_calls?: number;
  rows?: number;
  queue_wait_mean_ms?: number | null;
  batch_size_histogram?: IHistogramDoc | null;
  queue_wait_seconds_histogram?: IHistogramDoc | null;
  [key: string]: unknown;
}

/** One bucket as the panel draws it: how many fell in it alone (not cumulative). */
export interface IBucketView {
  /** the bucket's upper bound as the status writes it (`4.0`, `+Inf`) */
  le: string;
  label: string;
  count: number;
}

/** One model version's batching as the panel shows it. */
export interface IBatchingView {
  version: number | null;
  requests: number;
  calls: number;
  rows: number;
  meanWaitMs: number | null;
  /** rows per worker call: the buckets anything fell in, smallest first */
  sizes: IBucketView[];
  /** queue wait per request */
  waits: IBucketView[];
}

/**
 * The buckets anything fell in, each with its own count (the status's are cumulative);
 * `label(low, high)` names a bucket by the bound below it and its own (`high` Infinity
 * for the last).
 */
export function bucketCounts(
  hist: IHistogramDoc | null | undefined,
  label: (low: number | null, high: number) => string
): IBucketView[] {
  const shown: IBucketView[] = [];
  let below = 0;
  let low: number | null = null;
  for (const [le, cumulative] of (hist && hist.buckets) || []) {
    const high = le === '+Inf' ? Infinity : Number(le);
    const count = cumulative - below;
    if (count > 0) {
      shown.push({ le, label: label(low, high), count });
    }
    below = cumulative;
    low = high;
  }
  return shown;
}

/** `1`, `3–4`, `> 4096`: the rows of a batch-size bucket. */
export function rowsLabel(low: number | null, high: number): string {
  if (high === Infinity) {
    return word('batching_over', { bound: String(low) });
  }
  const first = low === null ? high : Math.floor(low) + 1;
  return first >= high ? String(high) : word('batching_range', { low: first, high });
}

/** `0`, `≤ 0.250 ms`, `> 1.00 s`: a queue-wait bucket (bounds in seconds). */
export function waitLabel(low: number | null, high: number): string {
  if (high === Infinity) {
    return word('batching_over', { bound: formatMs((low || 0) * 1000) });
  }
  return high === 0 ? '0' : word('batching_at_most', { bound: formatMs(high * 1000) });
}

/** The batching of every version of model `name` the status counts, oldest first. */
export function batchingViews(status: Record<string, unknown>, name: string): IBatchingView[] {
  const batching = status.batching as { models?: Record<string, IBatchingDoc> } | null;
  const docs = Object.values((batching && batching.models) || {}).filter(
    doc => doc && doc.model === name
  );
  return docs
    .map(doc => ({
      version: typeof doc.version === 'number' ? doc.version : null,
      requests: doc.requests || 0,
      calls: doc.worker_calls || 0,
      rows: doc.rows || 0,
      meanWaitMs: typeof doc.queue_wait_mean_ms === 'number' ? doc.queue_wait_mean_ms : null,
      sizes: bucketCounts(doc.batch_size_histogram, rowsLabel),
      waits: bucketCounts(doc.queue_wait_seconds_histogram, waitLabel)
    }))
    .sort((a, b) => (a.version ?? 0) - (b.version ?? 0));
}
