/**
 * The panel's words, from the one vocabulary the notebook widget (`%tfaas browser`)
 * reads too: tfaas_jupyter/client/vocabulary.json, bundled into the extension.
 */

import vocabulary from '../../tfaas_jupyter/client/vocabulary.json';

/** Every word, by key. */
export const WORDS: Readonly<Record<string, string>> = vocabulary;

/**
 * The word `key` with its `{placeholders}` filled from `values`, as the Python side's
 * `word()` does; an unknown key is an error, not a blank in the panel.
 */
export function word(key: string, values: Record<string, string | number> = {}): string {
  const text = WORDS[key];
  if (text === undefined) {
    throw new Error(`no word ${key} in the vocabulary`);
  }
  return fill(translation(text), values);
}

/** `text` with its `{placeholders}` filled from `values` (unknown ones left as they are). */
export function fill(text: string, values: Record<string, string | number> = {}): string {
  return text.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in values ? String(values[name]) : whole
  );
}

/** Lab's translation of a word's English text (`translateWith`; the text as it is before). */
let translation: (text: string) => string = text => text;

/**
 * Translate every `word()` from now on through `translate` (Lab's `ITranslator`, in the
 * plugin): the words of the pure modules (the panel, the status strip, the try-it form)
 * then go through the same translator as a `Vocabulary`'s. The plugin calls it once,
 * before it builds a view.
 */
export function translateWith(translate: (text: string) => string): void {
  translation = translate;
}
