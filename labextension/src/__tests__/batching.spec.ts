import { batchingViews, bucketCounts, IBatchingDoc, rowsLabel, waitLabel } from '../batching';

/** As the server writes `batching.models`: cumulative buckets ending at +Inf. */
const vk2: IBatchingDoc = {
  model: 'vk',
  version: 2,
  requests: 6,
  worker_calls: 3,
  rows: 9,
  queue_wait_mean_ms: 0.5,
  batch_size_histogram: {
    buckets: [
      ['1.0', 1],
      ['2.0', 1],
      ['4.0', 2],
      ['8.0', 3],
      ['+Inf', 3]
    ],
    sum: 9,
    count: 3
  },
  queue_wait_seconds_histogram: {
    buckets: [
      ['0.0', 2],
      ['0.001', 5],
      ['1.0', 5],
      ['+Inf', 6]
    ],
    sum: 0.003,
    count: 6
  }
};
const status = {
  batching: {
    models: {
      'vk/2': vk2,
      'vk/1': { model: 'vk', version: 1, requests: 0, worker_calls: 0, rows: 0 },
      'img/1': { model: 'img', version: 1, requests: 4 }
    }
  }
};

describe('batching histograms', () => {
  it('gives each bucket its own count, only those anything fell in', () => {
    const sizes = bucketCounts(vk2.batch_size_histogram, rowsLabel);
    expect(sizes).toEqual([
      { le: '1.0', label: '1', count: 1 },
      { le: '4.0', label: '3–4', count: 1 },
      { le: '8.0', label: '5–8', count: 1 }
    ]);
    const waits = bucketCounts(vk2.queue_wait_seconds_histogram, waitLabel);
    expect(waits).toEqual([
      { le: '0.0', label: '0', count: 2 },
      { le: '0.001', label: '≤ 1.00 ms', count: 3 },
      { le: '+Inf', label: '> 1.00 s', count: 1 }
    ]);
    expect(bucketCounts(null, rowsLabel)).toEqual([]);
    expect(rowsLabel(4096, Infinity)).toBe('> 4096');
  });

  it("shows one model's versions, oldest first", () => {
    const views = batchingViews(status, 'vk');
    expect(views.map(v => v.version)).toEqual([1, 2]);
    expect(views[0].sizes).toEqual([]);
    expect(views[1]).toMatchObject({ requests: 6, calls: 3, rows: 9, meanWaitMs: 0.5 });
    expect(batchingViews(status, 'nothing')).toEqual([]);
    expect(batchingViews({}, 'vk')).toEqual([]);
  });
});
