/// <reference types="node" />
import * as fs from 'fs';
import * as path from 'path';

import { ACCEPT, classifyFiles, MODEL_SUFFIXES, SUFFIXES, suffixesText } from '../upload';
import { word } from '../words';

/** The file the Python package ships and the notebook widget reads. */
const SHARED = path.resolve(__dirname, '../../../tfaas_jupyter/client/upload_files.json');

describe('the shared upload file endings', () => {
  it('are the Python package file, imported as it is', () => {
    const shipped = JSON.parse(fs.readFileSync(SHARED, 'utf-8'));
    expect(SUFFIXES).toEqual(shipped);
    expect(MODEL_SUFFIXES).toEqual(shipped.model);
    expect(shipped.model).toContain('.tar.gz');
  });

  it('make the picker accept every ending of every role, and nothing else', () => {
    const shipped = JSON.parse(fs.readFileSync(SHARED, 'utf-8'));
    const all = [...shipped.model, ...shipped.params, ...shipped.labels];
    expect(ACCEPT.split(',')).toEqual(all);
    for (const ending of shipped.model) {
      expect(classifyFiles([`net${ending.toUpperCase()}`]).get('model')).toBe(0);
    }
    for (const role of ['params', 'labels'] as const) {
      for (const ending of shipped[role]) {
        expect(classifyFiles(['net.pb', `x${ending}`]).get(role)).toBe(1);
      }
    }
  });

  it('name the endings in the errors', () => {
    expect(() => classifyFiles(['a.exe'])).toThrow(
      word('upload_not_model_file', { name: 'a.exe', ...suffixesText() })
    );
    expect(() => classifyFiles(['a.exe'])).toThrow('(.keras, .tar.gz, .tgz, .zip, .pb, .h5)');
    expect(() => classifyFiles(['labels.txt'])).toThrow(
      'no model file among the files (.keras, .tar.gz, .tgz, .zip, .pb, .h5)'
    );
  });
});
