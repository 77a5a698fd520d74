/**
 * The extension's settings (schema/plugin.json, edited in Lab's settings editor), with
 * their defaults when the registry is absent, and a signal when they change.
 */

import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ISignal, Signal } from '@lumino/signaling';

/** What the user can set. */
export interface ITFaaSSettings {
  /** Seconds between two status polls of the visible panel and status-bar item. */
  refreshInterval: number;
  showStatusItem: boolean;
  /** `ask`: ask for the model name (the file's proposed); `file`: the file's name. */
  uploadNamePolicy: 'ask' | 'file';
  confirmDelete: boolean;
  /** How "Copy curl" authenticates: `token` (a shell variable) or `keyfile`. */
  curlStyle: 'token' | 'keyfile';
  /** The key file the `keyfile` style reads. */
  curlKeyFile: string;
}

export const DEFAULT_SETTINGS: Readonly<ITFaaSSettings> = {
  refreshInterval: 5,
  showStatusItem: true,
  uploadNamePolicy: 'ask',
  confirmDelete: true,
  curlStyle: 'token',
  curlKeyFile: '~/.tfaas/keys/tfaas.key'
};

/** The settings as they are now; `changed` fires after each change. */
export class TFaaSSettings {
  get current(): Readonly<ITFaaSSettings> {
    return this._current;
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Follow the registry's settings of `pluginId` (the defaults until they load). */
  async follow(registry: ISettingRegistry, pluginId: string): Promise<void> {
    const settings = await registry.load(pluginId);
    this.update(settings.composite as Partial<ITFaaSSettings>);
    settings.changed.connect(() => this.update(settings.composite as Partial<ITFaaSSettings>));
  }

  update(values: Partial<ITFaaSSettings>): void {
    this._current = { ...DEFAULT_SETTINGS, ...values };
    this._changed.emit();
  }

  private _current: ITFaaSSettings = { ...DEFAULT_SETTINGS };
  private _changed = new Signal<this, void>(this);
}
