/**
 * Which picked or dropped file is the model, its params.json and its labels.txt.
 *
 * The same rules as the notebook's model browser, from the same file of endings
 * (tfaas_jupyter/client/upload_files.json): one model file (`.pb` with its params,
 * `.keras`, `.h5`, or a SavedModel archive `.tar.gz`/`.tgz`/`.zip`), at most one `.json`
 * (params) and one `.txt` (labels).
 */

import uploadFiles from '../../tfaas_jupyter/client/upload_files.json';
import { word } from './words';

export type UploadRole = 'model' | 'params' | 'labels';

/** The roles of an upload's files, in the order the picker lists them. */
export const ROLES: readonly UploadRole[] = ['model', 'params', 'labels'];

/** Each role's file name endings. */
export const SUFFIXES: Readonly<Record<UploadRole, readonly string[]>> = uploadFiles;

export const MODEL_SUFFIXES = SUFFIXES.model;

/** The file picker's `accept`: every ending of every role. */
export const ACCEPT = ROLES.flatMap(role => SUFFIXES[role]).join(',');

function ending(filename: string, endings: readonly string[]): string | null {
  const lower = filename.toLowerCase();
  return endings.find(suffix => lower.endsWith(suffix)) || null;
}

function modelSuffix(filename: string): string | null {
  return ending(filename, MODEL_SUFFIXES);
}

/** Each role's endings for the vocabulary's `{model}`, `{params}`, `{labels}`. */
export function suffixesText(): Record<UploadRole, string> {
  return {
    model: SUFFIXES.model.join(', '),
    params: SUFFIXES.params.join(', '),
    labels: SUFFIXES.labels.join(', ')
  };
}

/** The upload form field of each file, by name; throws an Error naming the problem. */
export function classifyFiles(names: string[]): Map<UploadRole, number> {
  const found = new Map<UploadRole, number>();
  names.forEach((name, index) => {
    const role = ROLES.find(r => ending(name, SUFFIXES[r]));
    if (role === undefined) {
      throw new Error(word('upload_not_model_file', { name, ...suffixesText() }));
    }
    const other = found.get(role);
    if (other !== undefined) {
      throw new Error(word('upload_two_files', { role, first: names[other], second: name }));
    }
    found.set(role, index);
  });
  if (!found.has('model')) {
    throw new Error(word('upload_no_model', suffixesText()));
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
  return stem.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '') || 'model';
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
