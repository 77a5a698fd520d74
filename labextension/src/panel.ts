/**
 * The TFaaS side panel: the models, the server's status, upload, delete and a
 * try-it form. Plain DOM in a Lumino widget; the logic lives in the pure modules
 * (models, status, predict, curl, upload) so it is unit tested without a browser.
 *
 * Elements tests and users address carry `data-tfaas="..."`; each model `data-model`.
 * Its words come from the vocabulary the notebook widget (`%tfaas browser`) shows too,
 * and its classes (style/base.css) dress that widget's markup as well.
 */

import { Clipboard, Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { TFaaSApi, TFaaSError } from './api';
import { batchingViews, IBatchingView, IBucketView } from './batching';
import { curlCommand, ICurlAuth, TOKEN_AUTH } from './curl';
import { underHub } from './explorer';
import { IModelView, shapeModels, versionsText } from './models';
import { exampleRow, formatValue, parseValues, predictRequest, resultRows } from './predict';
import { formatMs, ISample, IStatusDoc, predictionCount, requestRate, statusView } from './status';
import { ACCEPT, classifyFiles, nameFromFile, nameFromParams } from './upload';
import { word } from './words';

/** How often the visible panel polls the status and the model list (ms). */
const REFRESH_MS = 5000;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Array<Node | string>
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') {
      node.className = value;
    } else {
      node.setAttribute(key, value);
    }
  }
  node.append(...children);
  return node;
}

/**
 * The error as a Lab notification with the server's message; `action` names what
 * failed, `action_<action>` in the vocabulary (`upload`, `copy_curl`, ...).
 */
export function notifyError(action: string, error: unknown): void {
  let message = error instanceof Error ? error.message : String(error);
  if (error instanceof TFaaSError && error.status) {
    message = word('error_http', { message, status: error.status });
  }
  const notice = word('error_notice', { action: word(`action_${action}`), message });
  Notification.error(notice, { autoClose: 8000 });
}

export class TFaaSPanel extends Widget {
  constructor(readonly api: TFaaSApi = new TFaaSApi()) {
    super();
    this.id = 'tfaas-sidebar';
    this.addClass('jp-tfaas-panel');
    this.title.caption = word('title_long');
    this.build();
  }

  /** The models last listed, by name. */
  get models(): ReadonlyMap<string, IModelView> {
    return this._models;
  }

  get selected(): string | null {
    return this._selected;
  }

  /** What the Graph button does with the selected model (set by the plugin). */
  onGraph: ((name: string) => void) | null = null;
  /** What the OpenAPI button does instead of following its link (the API explorer). */
  onOpenAPI: ((name: string) => void) | null = null;
  /** Ask before a delete (the `confirmDelete` setting). */
  confirmDelete = true;
  /** How often the visible panel polls (ms; the `refreshInterval` setting). */
  refreshMs = REFRESH_MS;
  /** How a copied curl line authenticates (the `curlStyle` and `curlKeyFile` settings). */
  curlAuth: Readonly<ICurlAuth> = TOKEN_AUTH;

  /** Reload the models and the status now. */
  async refresh(): Promise<void> {
    await Promise.all([this.refreshModels(), this.refreshStatus()]);
  }

  /** Open the file picker (the palette's upload command). */
  pickFiles(): void {
    this._fileInput.click();
  }

  /** Upload the files as one model: a model file, optional params.json and labels.txt. */
  async upload(files: File[]): Promise<void> {
    let roles;
    try {
      roles = classifyFiles(files.map(f => f.name));
    } catch (error) {
      notifyError('upload', error);
      return;
    }
    const model = files[roles.get('model')!];
    // the typed name, else the one params.json gives (the server insists they agree),
    // else the model file's
    const params = roles.has('params') ? files[roles.get('params')!] : null;
    const name =
      this._nameInput.value.trim() ||
      (params ? nameFromParams(await params.text()) : null) ||
      nameFromFile(model.name);
    const form = new FormData();
    form.append('name', name);
    for (const [role, index] of roles) {
      form.append(role, files[index], files[index].name);
    }
    this._progress.hidden = false;
    this._progress.value = 0;
    this._progressText.textContent = word('uploading', { name });
    try {
      const answer = (await this.api.upload(form, (sent, total) => {
        this._progress.max = total || 1;
        this._progress.value = sent;
      })) as { name?: string; version?: number };
      const uploaded = word('uploaded', {
        name: String(answer.name),
        version: String(answer.version)
      });
      this._progressText.textContent = uploaded;
      this._nameInput.value = '';
      Notification.success(`${word('title')}: ${uploaded}`, { autoClose: 4000 });
      await this.refreshModels();
      if (answer.name) {
        this.select(answer.name);
      }
    } catch (error) {
      this._progressText.textContent = word('upload_failed');
      notifyError('upload', error);
    } finally {
      this._progress.hidden = true;
    }
  }

  /** Ask, then delete a model with all its versions. */
  async remove(name: string): Promise<boolean> {
    const model = this._models.get(name);
    const versions = model
      ? model.versions.length === 1
        ? ` (${word('delete_version', { version: versionsText(model) })})`
        : ` (${word('delete_versions', { versions: versionsText(model) })})`
      : '';
    const result =
      !this.confirmDelete ||
      (
        await showDialog({
          title: word('delete_title'),
          body: word('delete_ask', { what: `${name}${versions}` }),
          buttons: [
            Dialog.cancelButton({ label: word('cancel') }),
            Dialog.warnButton({ label: word('delete') })
          ]
        })
      ).button.accept;
    if (!result) {
      return false;
    }
    try {
      await this.api.remove(name);
    } catch (error) {
      notifyError('delete', error);
      return false;
    }
    Notification.success(`${word('title')}: ${word('deleted', { what: name })}`, {
      autoClose: 4000
    });
    if (this._selected === name) {
      this._selected = null;
    }
    await this.refreshModels();
    return true;
  }

  /** Run the try-it form's values through the selected model. */
  async predict(): Promise<void> {
    const model = this._selected ? this._models.get(this._selected) : undefined;
    if (!model) {
      notifyError('predict', new Error(word('select_first')));
      return;
    }
    let rows: number[][];
    let request;
    try {
      rows = parseValues(this._values.value);
      request = predictRequest(model, rows);
    } catch (error) {
      notifyError('predict', error);
      return;
    }
    this._result.replaceChildren(el('span', { class: 'jp-tfaas-muted' }, word('running')));
    try {
      const answer = await this.api.predict(request);
      this.showResult(resultRows(answer, rows.length, model.labels));
    } catch (error) {
      this._result.replaceChildren();
      notifyError('predict', error);
    }
  }

  /** Copy a curl line predicting with the selected model on this server. */
  async copyCurl(): Promise<string | null> {
    const model = this._selected ? this._models.get(this._selected) : undefined;
    if (!model) {
      notifyError('copy_curl', new Error(word('select_first')));
      return null;
    }
    let rows: number[][];
    try {
      rows = parseValues(this._values.value);
    } catch {
      rows = [exampleRow(model)];
    }
    let line: string;
    try {
      const request = predictRequest(model, rows);
      line = curlCommand(this.api.url('json'), request, this.underHub, this.curlAuth);
    } catch (error) {
      notifyError('copy_curl', error);
      return null;
    }
    Clipboard.copyToSystem(line);
    this._curlText.textContent = line;
    Notification.info(`${word('title')}: ${word('curl_copied')}`, { autoClose: 3000 });
    return line;
  }

  select(name: string): void {
    this._selected = name;
    for (const item of this._list.querySelectorAll<HTMLElement>('[data-model]')) {
      const on = item.dataset.model === name;
      item.classList.toggle('jp-mod-selected', on);
      item.setAttribute('aria-selected', String(on));
    }
    const model = this._models.get(name);
    this._tryTitle.textContent = model
      ? word('try_model', { name: model.name, version: model.version ?? '?' })
      : word('try_none');
    this._tryit.hidden = !model;
    if (model) {
      this._openapi.setAttribute('href', this.api.url('models', model.name, 'openapi.json'));
      this._values.value = JSON.stringify(exampleRow(model));
      this._result.replaceChildren();
      this._curlText.textContent = '';
    }
    this.renderBatching();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.refresh();
    this.stopTimer();
    this._timer = window.setInterval(() => void this.refresh(), this.refreshMs);
  }

  protected onBeforeHide(msg: Message): void {
    this.stopTimer();
    super.onBeforeHide(msg);
  }

  dispose(): void {
    this.stopTimer();
    super.dispose();
  }

  private get underHub(): boolean {
    return underHub();
  }

  private stopTimer(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  private async refreshModels(): Promise<void> {
    let views: IModelView[];
    try {
      views = shapeModels(await this.api.models());
    } catch (error) {
      this.reportPollError('models', error);
      return;
    }
    const fingerprint = JSON.stringify(views);
    if (fingerprint === this._modelsFingerprint) {
      return;
    }
    this._modelsFingerprint = fingerprint;
    this._models = new Map(views.map(v => [v.name, v]));
    this.renderModels(views);
    if (this._selected && !this._models.has(this._selected)) {
      this._selected = null;
    }
    const keep = this._selected;
    if (keep) {
      // keep the typed values: only mark the selection again
      for (const item of this._list.querySelectorAll<HTMLElement>('[data-model]')) {
        item.classList.toggle('jp-mod-selected', item.dataset.model === keep);
        item.setAttribute('aria-selected', String(item.dataset.model === keep));
      }
    } else if (views.length) {
      this.select(views[0].name);
    } else {
      this._tryit.hidden = true;
    }
  }

  private async refreshStatus(): Promise<void> {
    let doc: IStatusDoc;
    try {
      doc = (await this.api.status()) as IStatusDoc;
    } catch (error) {
      this.reportPollError('status', error);
      return;
    }
    const sample: ISample = { at: Date.now(), requests: predictionCount(doc) };
    const view = statusView(doc, requestRate(this._lastSample, sample));
    this._lastSample = sample;
    this._lastStatus = doc;
    this.renderBatching();
    for (const [key, value] of Object.entries(view)) {
      const cell = this._status.querySelector(`[data-status="${key}"]`);
      if (cell) {
        cell.textContent = value;
      }
    }
  }

  /** A failing poll notifies once, not every five seconds. */
  private reportPollError(what: string, error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    if (this._lastPollError !== message) {
      this._lastPollError = message;
      notifyError(what, error);
    }
  }

  private renderModels(views: IModelView[]): void {
    if (!views.length) {
      this._list.replaceChildren(el('li', { class: 'jp-tfaas-empty' }, word('models_empty')));
      return;
    }
    this._list.replaceChildren(...views.map(view => this.modelItem(view)));
  }

  private modelItem(view: IModelView): HTMLElement {
    const details = el('dl', { class: 'jp-tfaas-details' });
    const add = (term: string, values: string[]) => {
      if (values.length) {
        details.append(
          el('dt', {}, term),
          el('dd', {}, ...values.map(v => el('div', { class: 'jp-tfaas-value' }, v)))
        );
      }
    };
    // the notebook widget shows the same fields in the same order
    add(word('field_versions'), [versionsText(view)]);
    add(word('field_version_labels'), view.versionLabels ? [view.versionLabels] : []);
    add(word('field_format'), [view.format]);
    add(word('field_inputs'), view.inputs);
    add(word('field_outputs'), view.outputs);
    add(word('field_keys'), view.keys ? [view.keys.join(', ')] : []);
    add(word('field_labels'), view.labels.length ? [view.labels.join(', ')] : []);
    add(
      word('field_params'),
      view.params.map(([key, value]) => `${key}: ${value}`)
    );
    const remove = el(
      'button',
      {
        class: 'jp-tfaas-button jp-mod-warn',
        'data-tfaas': 'delete',
        title: word('delete_tip', { name: view.name }),
        'aria-label': word('delete_tip', { name: view.name })
      },
      word('delete')
    );
    remove.addEventListener('click', event => {
      event.stopPropagation();
      void this.remove(view.name);
    });
    const item = el(
      'li',
      {
        class: 'jp-tfaas-model',
        'data-model': view.name,
        tabindex: '0',
        role: 'option',
        'aria-selected': 'false'
      },
      el(
        'div',
        { class: 'jp-tfaas-model-head' },
        el('span', { class: 'jp-tfaas-model-name' }, view.name),
        el('span', { class: 'jp-tfaas-badge' }, `v${view.version ?? '?'}`),
        el('span', { class: 'jp-tfaas-badge' }, view.format),
        remove
      ),
      details
    );
    item.addEventListener('click', () => this.select(view.name));
    item.addEventListener('keydown', event => {
      if (event.target !== item) {
        return;
      }
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this.select(view.name);
      } else if (event.key === 'Delete') {
        event.preventDefault();
        void this.remove(view.name);
      } else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
        event.preventDefault();
        const next = (
          event.key === 'ArrowDown' ? item.nextElementSibling : item.previousElementSibling
        ) as HTMLElement | null;
        next?.focus();
      }
    });
    return item;
  }

  /**
   * The selected model's batching, from the last status: per version, how many rows
   * each worker call carried and how long each request waited in the queue, as bars.
   */
  private renderBatching(): void {
    const name = this._selected;
    if (!name || !this._lastStatus) {
      this._batching.hidden = true;
      return;
    }
    const views = batchingViews(this._lastStatus, name);
    this._batchingTitle.textContent = word('batching_heading', { name });
    this._batchingBody.replaceChildren(
      ...(views.length
        ? views.map(view => this.batchingVersion(view))
        : [el('div', { class: 'jp-tfaas-muted' }, word('batching_empty'))])
    );
    this._batching.hidden = false;
  }

  private batchingVersion(view: IBatchingView): HTMLElement {
    const mean = view.meanWaitMs === null ? word('status_no_value') : formatMs(view.meanWaitMs);
    return el(
      'div',
      { class: 'jp-tfaas-batching-version', 'data-version': String(view.version ?? '?') },
      el(
        'div',
        { class: 'jp-tfaas-muted' },
        word('batching_version', {
          version: view.version ?? '?',
          requests: view.requests,
          calls: view.calls,
          rows: view.rows
        })
      ),
      histogramTable('sizes', word('batching_sizes'), view.sizes),
      histogramTable('waits', word('batching_waits', { mean }), view.waits)
    );
  }

  private showResult(rows: ReturnType<typeof resultRows>): void {
    const tables = rows.map((cells, i) =>
      el(
        'table',
        { class: 'jp-tfaas-result-row', 'data-row': String(i) },
        ...(rows.length > 1 ? [el('caption', {}, word('result_row', { n: i + 1 }))] : []),
        ...cells.map(cell => {
          const bar = el('div', { class: 'jp-tfaas-bar' });
          if (cell.value >= 0 && cell.value <= 1) {
            bar.style.width = `${(cell.value * 100).toFixed(1)}%`;
          }
          return el(
            'tr',
            { 'data-label': cell.label },
            el('th', {}, cell.label),
            el(
              'td',
              { class: 'jp-tfaas-number', 'data-value': String(cell.value) },
              formatValue(cell.value)
            ),
            el('td', { class: 'jp-tfaas-bar-cell' }, bar)
          );
        })
      )
    );
    this._result.replaceChildren(...tables);
  }

  private build(): void {
    const refresh = el(
      'button',
      { class: 'jp-tfaas-button', 'data-tfaas': 'refresh', title: word('refresh_tip') },
      word('refresh')
    );
    refresh.addEventListener('click', () => void this.refresh());
    const statusCells = (
      ['worker', 'tensorflow', 'loaded', 'rate', 'p99', 'cold', 'devices'] as const
    ).map(key =>
      el(
        'div',
        { class: 'jp-tfaas-status-cell' },
        el('span', { class: 'jp-tfaas-muted' }, word(`status_${key}`)),
        el('span', { 'data-status': key }, word('status_pending'))
      )
    );
    this._status = el('div', { class: 'jp-tfaas-status', 'data-tfaas': 'status' }, ...statusCells);

    this._fileInput = el('input', {
      type: 'file',
      multiple: '',
      accept: ACCEPT,
      'data-tfaas': 'file',
      class: 'jp-tfaas-file'
    });
    this._fileInput.addEventListener('change', () => {
      const files = Array.from(this._fileInput.files || []);
      this._fileInput.value = '';
      if (files.length) {
        void this.upload(files);
      }
    });
    const choose = el(
      'button',
      { class: 'jp-tfaas-button', 'data-tfaas': 'upload', title: word('upload_tip') },
      word('upload')
    );
    choose.addEventListener('click', () => this.pickFiles());
    this._nameInput = el('input', {
      type: 'text',
      class: 'jp-tfaas-input',
      placeholder: word('upload_name'),
      title: word('upload_name_label'),
      'data-tfaas': 'name',
      'aria-label': word('upload_name_label')
    });
    this._progress = el('progress', { 'data-tfaas': 'progress', max: '1', value: '0' });
    this._progress.hidden = true;
    this._progressText = el('span', { class: 'jp-tfaas-muted', 'data-tfaas': 'upload-state' });
    const drop = el(
      'div',
      { class: 'jp-tfaas-drop', 'data-tfaas': 'drop' },
      el('div', { class: 'jp-tfaas-muted' }, `${word('upload_hint')}: ${word('upload_drop')}.`),
      el('div', { class: 'jp-tfaas-row' }, this._nameInput, choose),
      this._fileInput,
      this._progress,
      this._progressText
    );
    drop.addEventListener('dragover', event => {
      event.preventDefault();
      event.stopPropagation();
      drop.classList.add('jp-mod-dropTarget');
    });
    drop.addEventListener('dragleave', () => drop.classList.remove('jp-mod-dropTarget'));
    drop.addEventListener('drop', event => {
      event.preventDefault();
      event.stopPropagation();
      drop.classList.remove('jp-mod-dropTarget');
      const files = Array.from(event.dataTransfer?.files || []);
      if (files.length) {
        void this.upload(files);
      }
    });

    this._list = el('ul', {
      class: 'jp-tfaas-models',
      'data-tfaas': 'models',
      role: 'listbox',
      'aria-label': word('models')
    });

    this._tryTitle = el('h3', { class: 'jp-tfaas-heading' }, word('try_none'));
    this._values = el('textarea', {
      class: 'jp-tfaas-input jp-tfaas-values',
      'data-tfaas': 'values',
      rows: '3',
      'aria-label': `${word('values')}: ${word('values_hint')}`,
      spellcheck: 'false'
    });
    this._values.addEventListener('keydown', event => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey || event.shiftKey)) {
        event.preventDefault();
        void this.predict();
      }
    });
    const predict = el(
      'button',
      {
        class: 'jp-tfaas-button jp-mod-accept',
        'data-tfaas': 'predict',
        title: `${word('predict_tip')} (Shift+Enter)`
      },
      word('predict')
    );
    predict.addEventListener('click', () => void this.predict());
    const curl = el(
      'button',
      { class: 'jp-tfaas-button', 'data-tfaas': 'curl', title: word('copy_curl_tip') },
      word('copy_curl')
    );
    curl.addEventListener('click', () => void this.copyCurl());
    this._openapi = el(
      'a',
      {
        class: 'jp-tfaas-button',
        'data-tfaas': 'openapi',
        target: '_blank',
        rel: 'noopener',
        title: word('openapi_tip')
      },
      word('openapi')
    );
    const graph = el(
      'button',
      { class: 'jp-tfaas-button', 'data-tfaas': 'graph', title: word('graph_tip') },
      word('graph')
    );
    graph.addEventListener('click', () => this._selected && this.onGraph?.(this._selected));
    this._openapi.addEventListener('click', event => {
      if (this.onOpenAPI && this._selected) {
        event.preventDefault();
        this.onOpenAPI(this._selected);
      }
    });
    this._result = el('div', {
      class: 'jp-tfaas-result',
      'data-tfaas': 'result',
      'aria-live': 'polite'
    });
    this._curlText = el('code', { class: 'jp-tfaas-curl', 'data-tfaas': 'curl-text' });
    this._batchingTitle = el('h3', { class: 'jp-tfaas-heading' });
    this._batchingBody = el('div', { class: 'jp-tfaas-batching-body' });
    this._batching = el(
      'section',
      { class: 'jp-tfaas-batching', 'data-tfaas': 'batching' },
      this._batchingTitle,
      this._batchingBody
    );
    this._batching.hidden = true;
    this._tryit = el(
      'section',
      { class: 'jp-tfaas-tryit', 'data-tfaas': 'tryit' },
      this._tryTitle,
      el('label', { class: 'jp-tfaas-muted' }, `${word('values')} (${word('values_hint')})`),
      this._values,
      el('div', { class: 'jp-tfaas-row' }, predict, curl, this._openapi, graph),
      this._result,
      this._curlText,
      this._batching
    );
    this._tryit.hidden = true;

    this.node.append(
      el(
        'header',
        { class: 'jp-tfaas-header' },
        el('h2', { class: 'jp-tfaas-title', title: word('title_long') }, word('title')),
        refresh
      ),
      this._status,
      drop,
      el('h3', { class: 'jp-tfaas-heading' }, word('models')),
      this._list,
      this._tryit
    );
  }

  private _models: Map<string, IModelView> = new Map();
  private _modelsFingerprint = '';
  private _selected: string | null = null;
  private _lastSample: ISample | null = null;
  private _lastStatus: IStatusDoc | null = null;
  private _lastPollError = '';
  private _timer: number | null = null;
  private _status!: HTMLDivElement;
  private _list!: HTMLUListElement;
  private _fileInput!: HTMLInputElement;
  private _nameInput!: HTMLInputElement;
  private _progress!: HTMLProgressElement;
  private _progressText!: HTMLSpanElement;
  private _tryit!: HTMLElement;
  private _tryTitle!: HTMLElement;
  private _values!: HTMLTextAreaElement;
  private _result!: HTMLDivElement;
  private _curlText!: HTMLElement;
  private _openapi!: HTMLElement;
  private _batching!: HTMLElement;
  private _batchingTitle!: HTMLElement;
  private _batchingBody!: HTMLElement;
}

/**
 * One histogram as a table of bars: a row per bucket anything fell in (`data-le` its
 * upper bound as the status writes it), the bar as long as its share of the largest.
 */
function histogramTable(kind: string, title: string, buckets: IBucketView[]): HTMLElement {
  const most = Math.max(1, ...buckets.map(b => b.count));
  const total = buckets.reduce((sum, b) => sum + b.count, 0);
  return el(
    'table',
    { class: 'jp-tfaas-histogram', 'data-histogram': kind },
    el('caption', {}, title),
    ...buckets.map(bucket => {
      const bar = el('div', { class: 'jp-tfaas-bar' });
      bar.style.width = `${((bucket.count / most) * 100).toFixed(1)}%`;
      return el(
        'tr',
        {
          'data-le': bucket.le,
          title: word('batching_count_tip', { count: bucket.count, total })
        },
        el('th', {}, bucket.label),
        el('td', { class: 'jp-tfaas-bar-cell' }, bar),
        el(
          'td',
          { class: 'jp-tfaas-number', 'data-count': String(bucket.count) },
          String(bucket.count)
        )
      );
    })
  );
}
