/**
 * The graph view: Netron's viewer as the server serves it under `{base_url}tfaas/graph/`
 * (from the installed `netron` package), in a main-area tab. The page opens either a
 * served model version or a model file of the server's contents, by a URL of this
 * server; it reaches nothing else.
 */

import { IThemeManager, MainAreaWidget } from '@jupyterlab/apputils';
import { PathExt, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IFrame } from '@jupyterlab/ui-components';

import { tfaasIcon } from './icon';

/** What a graph view shows: a served model (latest or one version), or a file. */
export type GraphTarget = { model: string; version?: number | string | null } | { path: string };

/**
 * The viewer page's URL for `target`, under the server's base URL; `theme` (Lab's
 * current theme) is the theme the page takes its colours from (else the server uses
 * the user's Lab setting).
 */
export function graphUrl(target: GraphTarget, baseUrl: string, theme?: string | null): string {
  const query: Record<string, string> = {};
  if ('model' in target) {
    query.model = target.model;
    if (target.version !== undefined && target.version !== null) {
      query.version = String(target.version);
    }
  } else {
    query.path = target.path;
  }
  if (theme) {
    query.theme = theme;
  }
  return URLExt.join(baseUrl, 'tfaas', 'graph/') + URLExt.objectToQueryString(query);
}

/** The tab's title: the model's name (and version), or the file's name. */
export function graphTitle(target: GraphTarget): string {
  if ('model' in target) {
    const version = target.version ? ` v${target.version}` : '';
    return `${target.model}${version}`;
  }
  return PathExt.basename(target.path) || target.path;
}

/**
 * A main-area tab showing the graph of `target`, in Lab's current theme (redrawn in
 * the new one when the theme changes).
 */
export function graphWidget(
  target: GraphTarget,
  label: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings(),
  themes: IThemeManager | null = null
): MainAreaWidget<IFrame> {
  // scripts and the server's own cookies (its login), nothing else: no popups, no forms
  const content = new IFrame({
    sandbox: ['allow-scripts', 'allow-same-origin', 'allow-downloads']
  });
  content.url = graphUrl(target, settings.baseUrl, themes?.theme);
  content.node.dataset.tfaas = 'graph-view';
  const widget = new MainAreaWidget({ content });
  if (themes) {
    const follow = () => {
      content.url = graphUrl(target, settings.baseUrl, themes.theme);
    };
    themes.themeChanged.connect(follow);
    widget.disposed.connect(() => themes.themeChanged.disconnect(follow));
  }
  widget.id = `tfaas-graph-${Date.now()}`;
  widget.title.label = `${label}: ${graphTitle(target)}`;
  widget.title.icon = tfaasIcon;
  widget.title.closable = true;
  return widget;
}
