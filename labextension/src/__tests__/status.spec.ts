import {
  coldStarts,
  loadedText,
  predictionCount,
  requestRate,
  statusView,
  worstP99
} from '../status';

const status = {
  worker: { state: 'running', pid: 12 },
  tensorflow: '2.21.0',
  models_loaded: ['vk', 'img'],
  models: {
    vk: { requests: 30, p99_latency_ms: 2.5, cold_starts: 1, cold_start_mean_ms: 6000 },
    img: { requests: 12, p99_latency_ms: 25, cold_starts: 3, cold_start_mean_ms: 2000 },
    idle: { requests: 0, p99_latency_ms: null }
  }
};

describe('status strip', () => {
  it('counts the predictions of every model and takes the worst p99', () => {
    expect(predictionCount(status)).toBe(42);
    expect(worstP99(status)).toBe(25);
    expect(worstP99({ models: {} })).toBeNull();
  });

  it('counts cold starts apart, with their mean weighted by count', () => {
    expect(coldStarts(status)).toEqual({ count: 4, meanMs: 3000 });
    expect(coldStarts({ models: {} })).toEqual({ count: 0, meanMs: null });
  });

  it('computes the request rate between two polls', () => {
    expect(requestRate(null, { at: 1000, requests: 5 })).toBeNull();
    expect(requestRate({ at: 1000, requests: 5 }, { at: 3000, requests: 25 })).toBe(10);
    // a restarted server counts from zero again: no negative rate
    expect(requestRate({ at: 0, requests: 50 }, { at: 1000, requests: 2 })).toBe(0);
  });

  it('formats the strip', () => {
    expect(statusView(status, 10)).toEqual({
      worker: 'running',
      tensorflow: '2.21.0',
      loaded: 'vk, img',
      rate: '10 req/s',
      p99: '≤ 25.0 ms',
      cold: '4, mean 3.00 s',
      devices: '–'
    });
    expect(statusView(status, 0.5).rate).toBe('0.50 req/s');
    expect(statusView({ models: { a: { p99_latency_ms: 2500 } } }, null)).toEqual({
      worker: 'unknown',
      tensorflow: 'not loaded yet',
      loaded: 'none',
      rate: '–',
      p99: '≤ 2.50 s',
      cold: '–',
      devices: '–'
    });
  });

  it('shows why the worker is not running', () => {
    const failed = { worker: { state: 'failed', last_error: 'no module named tensorflow' } };
    expect(statusView(failed, null).worker).toBe('failed: no module named tensorflow');
    const gone = { worker: { state: 'unavailable', error: 'timed out' } };
    expect(statusView(gone, null).worker).toBe('unavailable: timed out');
  });

  it('names each loaded version with its number, two of one model apart', () => {
    const two = {
      models_loaded: ['vk', 'vk', 'img'],
      versions_loaded: [
        { name: 'vk', version: 1 },
        { name: 'vk', version: 2 },
        { name: 'img', version: null }
      ]
    };
    expect(loadedText(two)).toBe('vk v1, vk v2, img');
    expect(statusView(two, null).loaded).toBe('vk v1, vk v2, img');
    // an older server lists names only
    expect(loadedText({ models_loaded: ['vk'] })).toBe('vk');
    expect(loadedText({ versions_loaded: [] })).toBe('none');
  });
});
