import { describeTensor, inputWidth, shapeModels } from '../models';

const vk = {
  name: 'vk',
  model: 'model.pb',
  inputNode: 'dense_1_input',
  outputNode: 'output_node0',
  labels: 'labels.txt',
  version: 2,
  versions: [1, 2],
  format: 'graphdef',
  created: '2026-11-26T00:00:00Z',
  timestamp: '2026-11-26T00:00:00Z',
  inputs: [{ name: 'dense_1_input', dtype: 'float32', shape: [null, 42] }],
  outputs: [{ name: 'output_node0', dtype: 'float32', shape: [null, 1] }],
  label_names: ['signal']
};

describe('shapeModels', () => {
  it('lists models by name with every field the panel shows', () => {
    const views = shapeModels([{ ...vk, name: 'zz' }, vk]);
    expect(views.map(v => v.name)).toEqual(['vk', 'zz']);
    const view = views[0];
    expect(view.version).toBe(2);
    expect(view.versions).toEqual([1, 2]);
    expect(view.format).toBe('graphdef');
    expect(view.inputs).toEqual(['dense_1_input float32 [?, 42]']);
    expect(view.outputs).toEqual(['output_node0 float32 [?, 1]']);
    expect(view.labels).toEqual(['signal']);
    expect(view.width).toBe(42);
    expect(view.keys).toBeNull();
    expect(view.versionLabels).toBe('');
    // params.json's own entries, not the ones the server adds
    expect(view.params).toEqual([
      ['inputNode', 'dense_1_input'],
      ['labels', 'labels.txt'],
      ['model', 'model.pb'],
      ['outputNode', 'output_node0']
    ]);
  });

  it('takes the width from params keys when they are listed', () => {
    const [view] = shapeModels([{ ...vk, keys: ['a', 'b', 'c'] }]);
    expect(view.keys).toEqual(['a', 'b', 'c']);
    expect(view.width).toBe(3);
    // keys are a field of their own, as in the notebook widget
    expect(view.params.map(([key]) => key)).not.toContain('keys');
  });

  it('shows version labels as the widget does, not among the params', () => {
    const [view] = shapeModels([{ ...vk, version_labels: { stable: 1, canary: 2 } }]);
    expect(view.versionLabels).toBe('stable: 1, canary: 2');
    expect(view.params.map(([key]) => key)).not.toContain('version_labels');
  });

  it('copes with a model whose signature is not known yet', () => {
    const [view] = shapeModels([{ name: 'new', version: 1, inputs: null, outputs: null }]);
    expect(view.versions).toEqual([1]);
    expect(view.inputs).toEqual([]);
    expect(view.width).toBeNull();
    expect(view.format).toBe('?');
  });

  it('refuses an answer that is not a list and skips nameless entries', () => {
    expect(() => shapeModels({ error: 'x' })).toThrow('list of models');
    expect(shapeModels([{ version: 1 }, null, vk]).map(v => v.name)).toEqual(['vk']);
  });
});

describe('tensors', () => {
  it('describes shapes with unknown dimensions as ?', () => {
    expect(describeTensor({ name: 'x', dtype: 'uint8', shape: [null, 28, 28, -1] })).toBe(
      'x uint8 [?, 28, 28, ?]'
    );
    expect(describeTensor({ name: 'y' })).toBe('y');
  });

  it('multiplies the dimensions after the batch axis over every input', () => {
    expect(inputWidth([{ shape: [null, 2, 3] }, { shape: [null, 4] }])).toBe(10);
    expect(inputWidth([{ shape: [null, null] }])).toBeNull();
    expect(inputWidth([])).toBeNull();
  });
});
