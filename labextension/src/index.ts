/**
 * tfaas-jupyter's JupyterLab plugin: the TFaaS side panel, its commands (palette, main
 * menu, file browser), its status-bar item, the graph view and the API explorer.
 */

import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, IThemeManager } from '@jupyterlab/apputils';
import { FileBrowser, IDefaultFileBrowser, IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { Signal } from '@lumino/signaling';

import { addCommands, CommandIDs, ICommandContext, openGraph } from './commands';
import { openExplorer } from './explorer';
import { tfaasIcon } from './icon';
import { TFaaSPanel } from './panel';
import { TFaaSSettings } from './settings';
import { TFaaSStatusItem } from './statusbar';
import { TRANSLATION_DOMAIN, Vocabulary } from './translate';
import { translateWith } from './words';

const PLUGIN_ID = 'tfaas-jupyter:plugin';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'TensorFlow as a Service: models, status, upload and predictions in a side panel.',
  autoStart: true,
  requires: [ILabShell],
  optional: [
    ICommandPalette,
    ILayoutRestorer,
    ISettingRegistry,
    IStatusBar,
    ITranslator,
    IFileBrowserFactory,
    IDefaultFileBrowser,
    IThemeManager
  ],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    registry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    translator: ITranslator | null,
    files: IFileBrowserFactory | null,
    defaultBrowser: FileBrowser | null,
    themes: IThemeManager | null
  ) => {
    const words = new Vocabulary(translator);
    const bundle = (translator ?? nullTranslator).load(TRANSLATION_DOMAIN);
    translateWith(text => bundle.__(text));
    const settings = new TFaaSSettings();
    const panel = new TFaaSPanel();
    panel.title.icon = tfaasIcon;
    shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'tfaas-sidebar');

    const ctx: ICommandContext = {
      app,
      panel,
      api: panel.api,
      words,
      settings,
      open: () => shell.activateById(panel.id),
      openExplorer: model => openExplorer(app, panel.api, words, model),
      palette,
      files,
      defaultBrowser,
      themes
    };
    addCommands(ctx);
    panel.onGraph = name => openGraph(ctx, { model: name });
    panel.onOpenAPI = name => ctx.openExplorer(name);

    let statusItem: TFaaSStatusItem | null = null;
    const statusShown = new Signal<unknown, void>(settings);
    if (statusBar) {
      const item = new TFaaSStatusItem(
        panel.api,
        words,
        () => void app.commands.execute(CommandIDs.open)
      );
      statusItem = item;
      statusBar.registerStatusItem(`${PLUGIN_ID}:status`, {
        item,
        align: 'left',
        rank: 50,
        isActive: () => settings.current.showStatusItem,
        activeStateChanged: statusShown
      });
    }
    const apply = () => {
      const current = settings.current;
      panel.refreshMs = current.refreshInterval * 1000;
      panel.confirmDelete = current.confirmDelete;
      panel.curlAuth = { style: current.curlStyle, keyFile: current.curlKeyFile };
      if (statusItem) {
        statusItem.interval = current.refreshInterval;
        if (current.showStatusItem) {
          statusItem.start();
        } else {
          statusItem.stop();
        }
      }
      statusShown.emit();
    };
    settings.changed.connect(apply);
    apply();
    if (registry) {
      void settings.follow(registry, PLUGIN_ID).catch(error => {
        console.warn('tfaas-jupyter: settings not loaded, using the defaults', error);
      });
    }
  }
};

export default plugin;
