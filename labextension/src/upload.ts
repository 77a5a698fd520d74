/**
 * Which picked or dropped file is the model, its params.json and its labels.txt.
 *
 * The same rules as the notebook's model browser: one model file (`.pb` with its
 * params, `.keras`, `.h5`, or a SavedModel archive `.tar.gz`/`.tgz`/`.zip`), at most
 * one `.json` (params) and one `.txt` (labels).
 */

import { word } from './words';

export const MODEL_SUFFIXES = ['.keras', '.tar.gz', '.tgz', '.zip', '.pb', '.h5'];

/** The file picker's `accept`. */
export const ACCEPT = '.pb,.json,.txt,.tar.gz,.tgz,.zip,.keras,.h5';

export type UploadRole = 'model' | 'params' | 'labels';

function modelSuffix(filename: string): string | null {
  const lower = filename.toLowerCase();
  return MODEL_SUFFIXES.find(suffix => lower.endsWith(suffix)) || null;
}

/** The upload form field of each file, by name; throws an Error naming the problem. */
export function classifyFiles(names: string[]): Map<UploadRole, number> {
  const found = new Map<UploadRole, number>();
  names.forEach((name, index) => {
    const lower = name.toLowerCase();
    let role: UploadRole;
    if (modelSuffix(name)) {
      role = 'model';
    } else if (lower.endsWith('.json')) {
      role = 'params';
    } else if (lower.endsWith('.txt')) {
      role = 'labels';
    } else {
      throw new Error(word('upload_not_model_file', { name }));
    }
    const other = found.get(role);
    if (other !== undefined) {
      throw new Error(word('upload_two_files', { role, first: names[other], second: name }));
    }
    found.set(role, index);
  });
  if (!found.has('model')) {
    throw new Error(word('upload_no_model'));
  }
  return found;
}

/** A model name from its file name: `my model.keras` -> `my-model`. */
export function nameFromFile(filename: string): string {
  let stem = filename.split('/').pop() || filename;
  const suffix = modelSuffix(stem);
  if (suffix) {
    stem = stem.slice(0, -suffix.length);
  }
  return (
    stem
      .replace(/[^A-Za-z0-9_.-]+/g, '-')
      .replace(/^[-.]+|[-.]+$/g, '') || 'model'
  );
}

/** The `name` a params.json gives the model, if it is readable and gives one. */
export function nameFromParams(text: string): string | null {
  try {
    const params = JSON.parse(text);
    return params && typeof params.name === 'string' && params.name.trim()
      ? params.name.trim()
      : null;
  } catch {
    return null;
  }
}
