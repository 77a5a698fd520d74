/**
 * The file browser's "Serve with TFaaS" and "View graph" on model files (`.keras`,
 * `.h5`, `.onnx`, `.pb`) and folders (a SavedModel is a folder with `saved_model.pb`;
 * the server says so when one is not). The file is read on the server
 * (`POST tfaas/upload/contents`): nothing goes to the browser and back.
 */

import { InputDialog, Notification } from '@jupyterlab/apputils';
import { Contents } from '@jupyterlab/services';

import { TFaaSApi } from './api';
import { Vocabulary } from './translate';
import { nameFromFile } from './upload';

/** The file endings of the model files the file browser offers to serve or show. */
export const MODEL_FILE_ENDINGS = ['.keras', '.h5', '.onnx', '.pb'];

/** Whether the file browser's item may be a model: a model file, or a folder. */
export function isModelItem(item: Pick<Contents.IModel, 'type' | 'name'>): boolean {
  if (item.type === 'directory') {
    return true;
  }
  const name = item.name.toLowerCase();
  return MODEL_FILE_ENDINGS.some(ending => name.endsWith(ending));
}

/** The model name an item proposes: its name without the model file ending. */
export function proposedName(item: Pick<Contents.IModel, 'name'>): string {
  const name = item.name;
  const lower = name.toLowerCase();
  const ending = MODEL_FILE_ENDINGS.find(e => lower.endsWith(e));
  return nameFromFile(ending ? name.slice(0, -ending.length) : name);
}

/**
 * Serve `item` from the server's disk: the name asked for (the proposed one first) or
 * taken as proposed, by the `uploadNamePolicy` setting; progress and the outcome as
 * one notification. The answer of the upload, or null when cancelled or failed.
 */
export async function serveItem(
  api: TFaaSApi,
  words: Vocabulary,
  item: Pick<Contents.IModel, 'name' | 'path'>,
  ask: boolean
): Promise<{ name: string; version: number } | null> {
  let name = proposedName(item);
  if (ask) {
    const answer = await InputDialog.getText({
      title: words.word('command_serve_file'),
      label: words.word('serve_name_ask', { file: item.name }),
      text: name
    });
    if (!answer.button.accept || !answer.value?.trim()) {
      return null;
    }
    name = answer.value.trim();
  }
  const upload = api.uploadContents(item.path, name) as Promise<{ name: string; version: number }>;
  Notification.promise(upload, {
    pending: { message: words.word('serving_file', { file: item.name }), options: {} },
    success: {
      message: (done: unknown) => {
        const served = done as { name: string; version: number };
        return words.word('served_file', {
          file: item.name,
          name: served.name,
          version: served.version
        });
      },
      options: { autoClose: 5000 }
    },
    error: {
      message: (error: unknown) => `TFaaS upload: ${(error as Error).message}`,
      options: { autoClose: 8000 }
    }
  });
  try {
    return await upload;
  } catch {
    return null;
  }
}
