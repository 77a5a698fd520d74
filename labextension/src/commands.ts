/**
 * Every action of the panel as a command: in the command palette (category "TFaaS"),
 * the TFaaS main menu (schema/plugin.json) and, for files, the file browser's
 * context menu. Each label starts with "TFaaS" and is a word of the vocabulary.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import {
  Clipboard,
  Dialog,
  ICommandPalette,
  IThemeManager,
  InputDialog,
  showDialog
} from '@jupyterlab/apputils';
import { FileBrowser, IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { Contents } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { TFaaSApi } from './api';
import { isModelItem, serveItem } from './filebrowser';
import { GraphTarget, graphWidget } from './graph';
import { tfaasIcon } from './icon';
import { notifyError, TFaaSPanel } from './panel';
import { TFaaSSettings } from './settings';
import { Vocabulary } from './translate';

export namespace CommandIDs {
  export const open = 'tfaas:open';
  export const refresh = 'tfaas:refresh';
  export const upload = 'tfaas:upload';
  export const predict = 'tfaas:predict';
  export const copyCurl = 'tfaas:copy-curl';
  export const graph = 'tfaas:graph';
  export const openapi = 'tfaas:openapi';
  export const createKey = 'tfaas:create-key';
  export const exportModels = 'tfaas:export';
  export const serveFile = 'tfaas:serve-file';
  export const viewFileGraph = 'tfaas:view-file-graph';
}

/** The commands the palette lists (the file browser's two need a selected file). */
export const PALETTE_COMMANDS = [
  CommandIDs.open,
  CommandIDs.refresh,
  CommandIDs.upload,
  CommandIDs.predict,
  CommandIDs.copyCurl,
  CommandIDs.graph,
  CommandIDs.openapi,
  CommandIDs.createKey,
  CommandIDs.exportModels
];

export interface ICommandContext {
  app: JupyterFrontEnd;
  panel: TFaaSPanel;
  api: TFaaSApi;
  words: Vocabulary;
  settings: TFaaSSettings;
  /** Show the side panel. */
  open: () => void;
  /** Open the API explorer (a model's description, or the whole API's). */
  openExplorer: (model: string | null) => void;
  palette: ICommandPalette | null;
  files: IFileBrowserFactory | null;
  /** Lab's file browser in the left side bar. */
  defaultBrowser: FileBrowser | null;
  /** Lab's themes: the graph view takes the current one's colours. */
  themes: IThemeManager | null;
}

/** Open a graph view tab. */
export function openGraph(ctx: ICommandContext, target: GraphTarget): Widget {
  const widget = graphWidget(target, ctx.words.word('graph'), ctx.api.settings, ctx.themes);
  ctx.app.shell.add(widget, 'main');
  ctx.app.shell.activateById(widget.id);
  return widget;
}

/** The file browser's selected item, if any. */
function selectedFile(ctx: ICommandContext): Contents.IModel | null {
  // the one last focused, else the side bar's (the tracker has none before a focus)
  const browser = ctx.files?.tracker.currentWidget ?? ctx.defaultBrowser;
  if (!browser) {
    return null;
  }
  const next = browser.selectedItems().next();
  return next && !next.done && next.value ? next.value : null;
}

/** The selected model of the panel, or a notification asking to select one. */
function selectedModel(ctx: ICommandContext, action: string): string | null {
  if (!ctx.panel.selected) {
    notifyError(action, new Error(ctx.words.word('select_first')));
    ctx.open();
    return null;
  }
  return ctx.panel.selected;
}

async function createKey(ctx: ICommandContext): Promise<void> {
  const { words } = ctx;
  const answer = await InputDialog.getText({
    title: words.word('command_key'),
    label: words.word('key_name_ask')
  });
  if (!answer.button.accept || !answer.value?.trim()) {
    return;
  }
  let created: { name: string; key: string };
  try {
    created = (await ctx.api.createKey(answer.value.trim())) as { name: string; key: string };
  } catch (error) {
    notifyError('key', error);
    return;
  }
  const body = document.createElement('input');
  body.readOnly = true;
  body.value = created.key;
  body.dataset.tfaas = 'key-secret';
  body.className = 'jp-tfaas-key-secret';
  const result = await showDialog({
    title: words.word('key_created', { name: created.name }),
    body: new Widget({ node: body }),
    buttons: [
      Dialog.cancelButton({ label: words.word('cancel') }),
      Dialog.okButton({ label: words.word('copy') })
    ]
  });
  if (result.button.accept) {
    Clipboard.copyToSystem(created.key);
  }
}

/** Download the export archive through the browser (its login cookie authenticates). */
function downloadExport(ctx: ICommandContext): void {
  const link = document.createElement('a');
  link.href = ctx.api.url('export');
  link.download = 'tfaas-export.tar.gz';
  document.body.appendChild(link);
  link.click();
  link.remove();
}

export function addCommands(ctx: ICommandContext): void {
  const { app, panel, words } = ctx;
  const add = (id: string, options: Parameters<typeof app.commands.addCommand>[1]) =>
    app.commands.addCommand(id, options);

  add(CommandIDs.open, {
    label: words.word('command_open'),
    caption: words.word('command_open_caption'),
    icon: tfaasIcon,
    execute: ctx.open
  });
  add(CommandIDs.refresh, {
    label: words.word('command_refresh'),
    execute: async () => {
      ctx.open();
      await panel.refresh();
    }
  });
  add(CommandIDs.upload, {
    label: words.word('command_upload'),
    execute: () => {
      ctx.open();
      panel.pickFiles();
    }
  });
  add(CommandIDs.predict, {
    label: words.word('command_predict'),
    execute: async () => {
      ctx.open();
      await panel.predict();
    }
  });
  add(CommandIDs.copyCurl, {
    label: words.word('command_curl'),
    execute: async () => {
      ctx.open();
      await panel.copyCurl();
    }
  });
  add(CommandIDs.graph, {
    label: words.word('command_graph'),
    execute: args => {
      const name = (args.name as string | undefined) ?? selectedModel(ctx, 'graph');
      if (name) {
        openGraph(ctx, { model: name, version: (args.version as string | undefined) ?? null });
      }
    }
  });
  add(CommandIDs.openapi, {
    label: words.word('command_openapi'),
    execute: args => ctx.openExplorer((args.name as string | undefined) ?? panel.selected)
  });
  add(CommandIDs.createKey, {
    label: words.word('command_key'),
    execute: () => createKey(ctx)
  });
  add(CommandIDs.exportModels, {
    label: words.word('command_export'),
    execute: () => downloadExport(ctx)
  });
  const onModelFile = () => {
    const item = selectedFile(ctx);
    return item !== null && isModelItem(item);
  };
  add(CommandIDs.serveFile, {
    label: words.word('command_serve_file'),
    icon: tfaasIcon,
    isVisible: onModelFile,
    execute: async () => {
      const item = selectedFile(ctx);
      if (!item) {
        return;
      }
      const ask = ctx.settings.current.uploadNamePolicy === 'ask';
      const served = await serveItem(ctx.api, words, item, ask);
      if (served) {
        ctx.open();
        await panel.refresh();
        panel.select(served.name);
      }
    }
  });
  add(CommandIDs.viewFileGraph, {
    label: words.word('command_view_graph'),
    isVisible: onModelFile,
    execute: () => {
      const item = selectedFile(ctx);
      if (item) {
        openGraph(ctx, { path: item.path });
      }
    }
  });
  for (const command of PALETTE_COMMANDS) {
    ctx.palette?.addItem({ command, category: words.word('title') });
  }
}
