/**
 * Shaping the server's `GET tfaas/models` answer into what the panel shows.
 *
 * Pure functions (no DOM, no Lab imports) so the jest tests cover them.
 */

/** A tensor as the server describes it (`inputs`/`outputs` of a model). */
export interface ITensorSpec {
  name?: string;
  dtype?: string;
  shape?: Array<number | null> | null;
}

/** One entry of `GET tfaas/models`: the model's params.json keys, then ours. */
export interface IModelDoc {
  name: string;
  version?: number;
  versions?: number[];
  format?: string;
  inputs?: ITensorSpec[] | null;
  outputs?: ITensorSpec[] | null;
  label_names?: string[] | null;
  keys?: unknown;
  [key: string]: unknown;
}

/** A model as the panel lists it: every field already a display string. */
export interface IModelView {
  name: string;
  /** the latest version, used by the try-it form */
  version: number | null;
  versions: number[];
  format: string;
  inputs: string[];
  outputs: string[];
  labels: string[];
  /** the params.json entries the server keeps for the model (not ours) */
  params: Array<[string, string]>;
  /** the input keys params.json names, if any */
  keys: string[] | null;
  /** `stable: 3, canary: 4`: the model's version labels, '' without any */
  versionLabels: string;
  /** values per row the model takes, when its input shapes fix it */
  width: number | null;
}

/** The keys the server adds to a model's params.json in `/models`. */
const SERVER_KEYS = new Set([
  'name',
  'version',
  'versions',
  'format',
  'created',
  'timestamp',
  'inputs',
  'outputs',
  'label_names',
  'version_details',
  'version_labels',
  'keys'
]);

/** `name dtype [?, 42]`: one tensor on one line; unknown dimensions as `?`. */
export function describeTensor(spec: ITensorSpec): string {
  const shape = Array.isArray(spec.shape)
    ? '[' +
      spec.shape.map(d => (typeof d === 'number' && d >= 0 ? String(d) : '?')).join(', ') +
      ']'
    : '';
  return [spec.name, spec.dtype, shape].filter(part => part).join(' ');
}

/** Values per row: the product of every input's dimensions after the batch one. */
export function inputWidth(inputs: ITensorSpec[] | null | undefined): number | null {
  if (!inputs || inputs.length === 0) {
    return null;
  }
  let total = 0;
  for (const spec of inputs) {
    if (!Array.isArray(spec.shape)) {
      return null;
    }
    let size = 1;
    for (const dim of spec.shape.slice(1)) {
      if (typeof dim !== 'number' || dim < 0) {
        return null;
      }
      size *= dim;
    }
    total += size;
  }
  return total || null;
}

function displayValue(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** `stable: 3, canary: 4`, as the notebook widget shows version labels. */
export function versionLabelsText(labels: unknown): string {
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) {
    return '';
  }
  return Object.entries(labels as Record<string, unknown>)
    .map(([label, version]) => `${label}: ${String(version)}`)
    .join(', ');
}

/** One model document as the panel shows it. */
export function modelView(doc: IModelDoc): IModelView {
  const versions = Array.isArray(doc.versions)
    ? doc.versions.filter(v => typeof v === 'number')
    : typeof doc.version === 'number'
      ? [doc.version]
      : [];
  const keys = Array.isArray(doc.keys) && doc.keys.length > 0 ? doc.keys.map(String) : null;
  const params: Array<[string, string]> = Object.keys(doc)
    .filter(key => !SERVER_KEYS.has(key) && doc[key] !== null && doc[key] !== undefined)
    .sort()
    .map(key => [key, displayValue(doc[key])]);
  return {
    name: doc.name,
    version:
      typeof doc.version === 'number'
        ? doc.version
        : versions.length
          ? versions[versions.length - 1]
          : null,
    versions,
    format: typeof doc.format === 'string' ? doc.format : '?',
    inputs: (doc.inputs || []).map(describeTensor),
    outputs: (doc.outputs || []).map(describeTensor),
    labels: Array.isArray(doc.label_names) ? doc.label_names.map(String) : [],
    params,
    keys,
    versionLabels: versionLabelsText(doc.version_labels),
    width: keys ? keys.length : inputWidth(doc.inputs)
  };
}

/** The `/models` answer as views sorted by name; anything else is an error. */
export function shapeModels(answer: unknown): IModelView[] {
  if (!Array.isArray(answer)) {
    throw new Error('the server did not answer a list of models');
  }
  return answer
    .filter(
      (doc): doc is IModelDoc =>
        typeof doc === 'object' && doc !== null && typeof doc.name === 'string'
    )
    .map(modelView)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** `1, 2, 3`: the versions for display. */
export function versionsText(view: IModelView): string {
  return view.versions.join(', ') || '?';
}
