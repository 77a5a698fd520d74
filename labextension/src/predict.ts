/**
 * The try-it form: reading the values a user typed, and shaping the outputs.
 */

import { IModelView } from './models';
import { word } from './words';

/** A `POST tfaas/json` body. */
export interface IPredictRequest {
  model: string;
  version?: number;
  keys?: string[];
  values: number[] | number[][];
}

/** One output of one row: its label (or `output_i`) and value. */
export interface IOutputCell {
  label: string;
  value: number;
}

function isNumberRow(row: unknown): row is number[] {
  return Array.isArray(row) && row.every(v => typeof v === 'number' && isFinite(v));
}

/**
 * The rows in the values field: a JSON row (`[1, 2]`), a list of rows
 * (`[[1, 2], [3, 4]]`), or bare numbers separated by commas (`1, 2`).
 * Throws an Error saying what is wrong.
 */
export function parseValues(text: string): number[][] {
  const trimmed = text.trim();
  if (!trimmed) {
    throw new Error(word('values_missing'));
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed.startsWith('[') ? trimmed : `[${trimmed}]`);
  } catch {
    throw new Error(word('values_not_json', { text: trimmed.slice(0, 40) }));
  }
  if (isNumberRow(parsed) && parsed.length > 0) {
    return [parsed];
  }
  if (Array.isArray(parsed) && parsed.length > 0 && parsed.every(isNumberRow)) {
    return parsed as number[][];
  }
  throw new Error(word('values_not_numbers'));
}

/** The request for the rows; checks their width against the model's when known. */
export function predictRequest(model: IModelView, rows: number[][]): IPredictRequest {
  for (const [i, row] of rows.entries()) {
    if (model.width !== null && row.length !== model.width) {
      throw new Error(
        word('values_width', {
          name: model.name,
          width: model.width,
          row: i + 1,
          count: row.length
        })
      );
    }
  }
  const request: IPredictRequest = {
    model: model.name,
    values: rows.length === 1 ? rows[0] : rows
  };
  if (model.version !== null) {
    request.version = model.version;
  }
  if (model.keys) {
    request.keys = model.keys;
  }
  return request;
}

/** A row of zeros of the model's width: the example the form starts with. */
export function exampleRow(model: IModelView): number[] {
  return new Array(model.width || 1).fill(0);
}

function flatten(value: unknown): number[] {
  if (Array.isArray(value)) {
    return value.flatMap(flatten);
  }
  if (typeof value === 'number') {
    return [value];
  }
  throw new Error(`an output that is not a number: ${JSON.stringify(value)}`);
}

/**
 * `/json`'s answer as one list of labelled outputs per row. The answer is the
 * output list for one row, or one list per row; the labels name the outputs when
 * there are exactly as many as outputs, else they are `output_0..n`.
 */
export function resultRows(answer: unknown, rowCount: number, labels: string[]): IOutputCell[][] {
  if (!Array.isArray(answer)) {
    throw new Error('the server did not answer a list of outputs');
  }
  const rows = rowCount === 1 ? [answer] : answer;
  return rows.map(row => {
    const values = flatten(row);
    const names = labels.length === values.length ? labels : values.map((_, i) => `output_${i}`);
    return values.map((value, i) => ({ label: names[i], value }));
  });
}

/** A value to six significant digits (probabilities: `0.700512`). */
export function formatValue(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toPrecision(6);
}
