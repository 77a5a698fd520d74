/**
 * The status-bar item: the worker's state, the models loaded (counted; named in its
 * tooltip) and the request rate, polled from `tfaas/status` every refresh interval
 * while the page is visible; clicking it opens the panel. Its words are the strip's
 * (status.ts), translated.
 */

import { Widget } from '@lumino/widgets';

import { TFaaSApi } from './api';
import { ISample, IStatusDoc, predictionCount, requestRate, statusView } from './status';
import { Vocabulary } from './translate';

export class TFaaSStatusItem extends Widget {
  constructor(
    readonly api: TFaaSApi,
    readonly words: Vocabulary,
    readonly onClick: () => void
  ) {
    super({ node: document.createElement('button') });
    this.addClass('jp-tfaas-status-item');
    this.node.dataset.tfaas = 'status-item';
    this.node.title = words.word('status_item_tip');
    this.node.textContent = `${words.word('title')}: ${words.word('status_pending')}`;
    this.node.addEventListener('click', () => this.onClick());
    document.addEventListener('visibilitychange', this._onVisibility);
  }

  /** Seconds between polls (the setting); the next poll takes it. */
  set interval(seconds: number) {
    this._intervalMs = Math.max(1, seconds) * 1000;
    this.schedule();
  }

  /** Poll now and keep polling while shown. */
  start(): void {
    this._running = true;
    void this.poll();
  }

  stop(): void {
    this._running = false;
    this.cancel();
  }

  dispose(): void {
    this.stop();
    document.removeEventListener('visibilitychange', this._onVisibility);
    super.dispose();
  }

  /** Ask `/status` once and show it. */
  async poll(): Promise<void> {
    this.cancel();
    try {
      const status = (await this.api.status()) as IStatusDoc;
      const sample: ISample = { at: Date.now(), requests: predictionCount(status) };
      const view = statusView(status, requestRate(this._last, sample));
      this._last = sample;
      const loaded = (status.models_loaded || []).length;
      this.node.textContent = this.words.word('status_item', {
        worker: view.worker,
        loaded,
        rate: view.rate
      });
      // the count in the bar, the versions themselves on hover
      this.node.title = `${this.words.word('status_item_tip')}\n${this.words.word(
        'status_loaded'
      )}: ${view.loaded}`;
      this.node.dataset.state = status.worker?.state || 'unknown';
    } catch (error) {
      this.node.textContent = `${this.words.word('title')}: ${(error as Error).message}`;
      this.node.dataset.state = 'error';
    }
    this.schedule();
  }

  private schedule(): void {
    this.cancel();
    if (this._running && !this.isDisposed && document.visibilityState !== 'hidden') {
      this._timer = window.setTimeout(() => void this.poll(), this._intervalMs);
    }
  }

  private cancel(): void {
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
      this._timer = null;
    }
  }

  private _onVisibility = (): void => {
    if (this._running && document.visibilityState === 'visible') {
      void this.poll();
    } else {
      this.cancel();
    }
  };

  private _intervalMs = 5000;
  private _timer: number | null = null;
  private _running = false;
  private _last: ISample | null = null;
}
