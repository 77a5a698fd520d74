/**
 * tfaas-jupyter's JupyterLab plugin: the TFaaS side panel and its commands.
 */

import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';

import { tfaasIcon } from './icon';
import { TFaaSPanel } from './panel';
import { word } from './words';

namespace CommandIDs {
  export const open = 'tfaas:open';
  export const refresh = 'tfaas:refresh';
  export const upload = 'tfaas:upload';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'tfaas-jupyter:plugin',
  description: 'TensorFlow as a Service: models, status, upload and predictions in a side panel.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new TFaaSPanel();
    panel.title.icon = tfaasIcon;
    shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'tfaas-sidebar');

    const open = () => shell.activateById(panel.id);
    app.commands.addCommand(CommandIDs.open, {
      label: word('command_open'),
      caption: word('command_open_caption'),
      icon: tfaasIcon,
      execute: open
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: word('command_refresh'),
      execute: async () => {
        open();
        await panel.refresh();
      }
    });
    app.commands.addCommand(CommandIDs.upload, {
      label: word('command_upload'),
      execute: () => {
        open();
        panel.pickFiles();
      }
    });
    for (const command of [CommandIDs.open, CommandIDs.refresh, CommandIDs.upload]) {
      palette?.addItem({ command, category: word('title_long') });
    }
  }
};

export default plugin;
