/**
 * Formatting the server's `GET tfaas/status` for the panel's status strip.
 *
 * The request rate is not in `/status`: it is the change of the prediction count
 * between two polls, so the caller keeps the previous sample. The words are the shared
 * vocabulary's, as the notebook widget's strip shows them.
 */

import { WORDS, word } from './words';

/** The part of `/status` the strip reads. */
export interface IStatusDoc {
  worker?: { state?: string; error?: string; last_error?: string } | null;
  tensorflow?: string | null;
  models_loaded?: string[] | null;
  versions_loaded?: Array<{ name?: string; version?: number | null }> | null;
  models_on_disk?: string[] | null;
  devices?: IDevicesDoc | null;
  models?: Record<
    string,
    {
      requests?: number;
      p99_latency_ms?: number | null;
      cold_starts?: number;
      cold_start_mean_ms?: number | null;
    }
  > | null;
  [key: string]: unknown;
}

/** One logical device of the model worker (bytes: GPUs only). */
export interface IDeviceDoc {
  name?: string;
  type?: string;
  memory_in_use?: number | null;
  memory_peak?: number | null;
}

/** The status's `devices`: the worker's devices (null until it runs) and its models'. */
export interface IDevicesDoc {
  devices?: IDeviceDoc[] | null;
  models?: Record<string, string> | null;
  [key: string]: unknown;
}

/** A poll: when (milliseconds) and the prediction count then. */
export interface ISample {
  at: number;
  requests: number;
}

/** The strip's texts. */
export interface IStatusView {
  worker: string;
  tensorflow: string;
  loaded: string;
  rate: string;
  p99: string;
  cold: string;
  devices: string;
}

/** Predictions served so far: the sum over every model's `requests`. */
export function predictionCount(status: IStatusDoc): number {
  let total = 0;
  for (const stats of Object.values(status.models || {})) {
    if (stats && typeof stats.requests === 'number') {
      total += stats.requests;
    }
  }
  return total;
}

/** The worst p99 latency over the models (milliseconds), or null before any request. */
export function worstP99(status: IStatusDoc): number | null {
  let worst: number | null = null;
  for (const stats of Object.values(status.models || {})) {
    const p99 = stats ? stats.p99_latency_ms : null;
    if (typeof p99 === 'number' && (worst === null || p99 > worst)) {
      worst = p99;
    }
  }
  return worst;
}

/** Cold starts over the models: how many, and their mean time (milliseconds). */
export function coldStarts(status: IStatusDoc): { count: number; meanMs: number | null } {
  let count = 0;
  let total = 0;
  for (const stats of Object.values(status.models || {})) {
    const n = stats && typeof stats.cold_starts === 'number' ? stats.cold_starts : 0;
    if (n > 0) {
      count += n;
      total += n * (stats.cold_start_mean_ms || 0);
    }
  }
  return { count, meanMs: count ? total / count : null };
}

/** Requests per second between two samples; null without an earlier one. */
export function requestRate(previous: ISample | null, current: ISample): number | null {
  if (!previous || current.at <= previous.at) {
    return null;
  }
  const served = Math.max(0, current.requests - previous.requests);
  return (served * 1000) / (current.at - previous.at);
}

/** `12.3 ms`, `1.20 s`: a latency to three significant digits. */
export function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toPrecision(3)} s` : `${ms.toPrecision(3)} ms`;
}

/** `1.5 MiB`: bytes in MiB to three significant digits. */
export function formatMiB(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toPrecision(3)} MiB`;
}

/** `GPU:0` of TensorFlow's `/job:localhost/replica:0/task:0/device:GPU:0`. */
export function shortDevice(name: string): string {
  return name.split('device:').pop() || name;
}

/** The worker's devices: each GPU with its memory in use and peak, the CPU by name. */
export function devicesText(status: IStatusDoc): string {
  const devices = (status.devices && status.devices.devices) || [];
  if (!devices.length) {
    return word('status_no_value');
  }
  return devices
    .map(device => {
      const name = shortDevice(device.name || '?');
      if (typeof device.memory_in_use === 'number' && typeof device.memory_peak === 'number') {
        return word('status_gpu_memory_value', {
          device: name,
          used: formatMiB(device.memory_in_use),
          peak: formatMiB(device.memory_peak)
        });
      }
      return name;
    })
    .join(', ');
}

/**
 * The model versions the worker holds, each with its number (`vk v1, vk v2`): from
 * `versions_loaded`, else (an older server) the names of `models_loaded`.
 */
export function loadedText(status: IStatusDoc): string {
  const loaded = status.versions_loaded
    ? status.versions_loaded.map(entry =>
        typeof entry.version === 'number'
          ? word('status_loaded_version', { name: entry.name || '?', version: entry.version })
          : entry.name || '?'
      )
    : status.models_loaded || [];
  return loaded.length ? loaded.join(', ') : word('status_none');
}

/** The worker's state in the vocabulary's words (an unknown state as it is). */
export function workerText(state: string): string {
  return `worker_${state}` in WORDS ? word(`worker_${state}`) : state;
}

/** The strip for one `/status` answer and the request rate since the last poll. */
export function statusView(status: IStatusDoc, rate: number | null): IStatusView {
  const worker = status.worker || {};
  const state = worker.state || 'unknown';
  const problem = worker.error || (state === 'failed' ? worker.last_error : '');
  const p99 = worstP99(status);
  const cold = coldStarts(status);
  const none = word('status_no_value');
  return {
    worker: problem
      ? word('worker_problem', { state: workerText(state), problem })
      : workerText(state),
    tensorflow: status.tensorflow || word('status_tensorflow_unknown'),
    loaded: loadedText(status),
    rate:
      rate === null
        ? none
        : word('status_rate_value', { rate: rate < 10 ? rate.toFixed(2) : rate.toFixed(0) }),
    p99: p99 === null ? none : word('status_p99_value', { latency: formatMs(p99) }),
    cold:
      cold.meanMs === null
        ? none
        : word('status_cold_value', { count: cold.count, latency: formatMs(cold.meanMs) }),
    devices: devicesText(status)
  };
}
