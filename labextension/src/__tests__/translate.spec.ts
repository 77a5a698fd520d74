import { parseValues } from '../predict';
import { statusView } from '../status';
import { classifyFiles } from '../upload';
import { translateWith, word, WORDS } from '../words';

/** A stand-in language: each English text upper-cased, its placeholders kept. */
const shout = (text: string): string => text.replace(/[a-z]+(?![^{]*\})/g, w => w.toUpperCase());

describe('the pure modules through the translator', () => {
  afterEach(() => translateWith(text => text));

  it('translate every word before filling it', () => {
    expect(word('uploaded', { name: 'vk', version: 2 })).toBe('vk version 2 uploaded');
    translateWith(shout);
    expect(word('uploaded', { name: 'vk', version: 2 })).toBe('vk VERSION 2 UPLOADED');
  });

  it('reach the status strip, the try-it form and the upload checks', () => {
    translateWith(shout);
    const view = statusView({ worker: { state: 'starting' } }, null);
    expect(view.worker).toBe(WORDS.worker_starting.toUpperCase());
    expect(view.loaded).toBe(WORDS.status_none.toUpperCase());
    expect(() => parseValues('')).toThrow(WORDS.values_missing.toUpperCase());
    expect(() => classifyFiles(['labels.txt'])).toThrow('NO MODEL FILE');
    // a state the vocabulary has no word for is shown as the server names it
    expect(statusView({ worker: { state: 'elsewhere' } }, null).worker).toBe('elsewhere');
  });
});
