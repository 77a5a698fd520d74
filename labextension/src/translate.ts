/**
 * The vocabulary through Lab's translator (`ITranslator`): each word's English text is
 * the message id of the `tfaas_jupyter` domain, so a language pack translates the
 * words of the panel, the commands and the status bar alike.
 */

import { ITranslator, nullTranslator, TranslationBundle } from '@jupyterlab/translation';

import { WORDS, fill } from './words';

/** The gettext domain of the extension's words. */
export const TRANSLATION_DOMAIN = 'tfaas_jupyter';

export class Vocabulary {
  constructor(translator: ITranslator | null = null) {
    this._bundle = (translator ?? nullTranslator).load(TRANSLATION_DOMAIN);
  }

  /** The word `key`, translated, with its `{placeholders}` filled from `values`. */
  word(key: string, values: Record<string, string | number> = {}): string {
    const text = WORDS[key];
    if (text === undefined) {
      throw new Error(`no word ${key} in the vocabulary`);
    }
    return fill(this._bundle.__(text), values);
  }

  private _bundle: TranslationBundle;
}
