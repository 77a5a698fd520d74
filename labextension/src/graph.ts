/**
 * The graph view: Netron's viewer as the server serves it under `{base_url}tfaas/graph/`
 * (from the installed `netron` package), in a main-area tab. The page opens either a
 * served model version or a model file of the server's contents, by a URL of this
 * server; it reaches nothing else.
 */

import { MainAreaWidget } from '@jupyterlab/apputils';
import { PathExt, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IFrame } from '@jupyterlab/ui-components';

import { tfaasIcon } from './icon';

/** What a graph view shows: a served model (latest or one version), or a file. */
export type GraphTarget = { model: string; version?: number | string | null } | { path: string };

/** The viewer page's URL for `target`, under the server's base URL. */
export function graphUrl(target: GraphTarget, baseUrl: string): string {
  const query: Record<string, string> = {};
  if ('model' in target) {
    query.model = target.model;
    if (target.version !== undefined && target.version !== null) {
      query.version = String(target.version);
    }
  } else {
    query.path = target.path;
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

/** A main-area tab showing the graph of `target`. */
export function graphWidget(
  target: GraphTarget,
  label: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): MainAreaWidget<IFrame> {
  // scripts and the server's own cookies (its login), nothing else: no popups, no forms
  const content = new IFrame({
    sandbox: ['allow-scripts', 'allow-same-origin', 'allow-downloads']
  });
  content.url = graphUrl(target, settings.baseUrl);
  content.node.dataset.tfaas = 'graph-view';
  const widget = new MainAreaWidget({ content });
  widget.id = `tfaas-graph-${Date.now()}`;
  widget.title.label = `${label}: ${graphTitle(target)}`;
  widget.title.icon = tfaasIcon;
  widget.title.closable = true;
  return widget;
}
