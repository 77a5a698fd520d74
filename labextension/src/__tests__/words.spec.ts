/// <reference types="node" />
import * as fs from 'fs';
import * as path from 'path';

import { statusView, workerText } from '../status';
import { WORDS, word } from '../words';

/** The file the Python package ships and the notebook widget reads. */
const SHARED = path.resolve(__dirname, '../../../tfaas_jupyter/client/vocabulary.json');

describe('the shared vocabulary', () => {
  it('is the Python package file, imported as it is', () => {
    const shipped = JSON.parse(fs.readFileSync(SHARED, 'utf-8'));
    expect(WORDS).toEqual(shipped);
  });

  it('has every word the panel asks for', () => {
    const sources = fs
      .readdirSync(path.resolve(__dirname, '..'))
      .filter(name => name.endsWith('.ts'))
      .map(name => fs.readFileSync(path.resolve(__dirname, '..', name), 'utf-8'))
      .join('\n');
    const used: string[] = [];
    const call = /word\('(\w+)'/g;
    for (let m = call.exec(sources); m; m = call.exec(sources)) {
      used.push(m[1]);
    }
    expect(used.length).toBeGreaterThan(30);
    for (const key of used) {
      expect(WORDS).toHaveProperty(key);
    }
    for (const key of ['worker', 'tensorflow', 'loaded', 'rate', 'p99', 'cold']) {
      expect(WORDS).toHaveProperty(`status_${key}`);
    }
  });

  it('fills placeholders as the widget does and refuses unknown keys', () => {
    expect(word('uploaded', { name: 'vk', version: 2 })).toBe('vk version 2 uploaded');
    expect(word('try_model', { name: 'a' })).toBe('Try a (version {version})');
    expect(() => word('no such word')).toThrow('no word');
  });

  it('names worker states in its words', () => {
    expect(workerText('stopped')).toBe(WORDS.worker_stopped);
    expect(workerText('elsewhere')).toBe('elsewhere');
    expect(statusView({ worker: { state: 'starting' } }, null).worker).toBe(WORDS.worker_starting);
  });
});
