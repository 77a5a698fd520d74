/**
 * The API explorer: Swagger UI (the `swagger-ui-dist` package, bundled in a chunk of
 * its own, loaded on first use) on the server's OpenAPI description, the whole API's
 * or one model's, in a main-area tab. "Try it out" calls this server with Lab's own
 * credentials: the token in an `Authorization` header when Lab has one, else the login
 * cookie with Jupyter's XSRF header.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { TFaaSApi } from './api';
import { hideToken, tokenVariable } from './curl';
import { tfaasIcon } from './icon';
import { Vocabulary } from './translate';

/** A request as Swagger UI hands it to its interceptor. */
export interface IExplorerRequest {
  url: string;
  headers: Record<string, string>;
  [key: string]: unknown;
}

/** The description the explorer shows: one model's, or the whole API's. */
export function descriptionUrl(api: TFaaSApi, model: string | null): string {
  return model ? api.url('models', model, 'openapi.json') : api.url('openapi.json');
}

/** The value of cookie `name` in `cookies` (`document.cookie`), or ''. */
export function cookieValue(cookies: string, name: string): string {
  for (const part of cookies.split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) {
      return decodeURIComponent(rest.join('='));
    }
  }
  return '';
}

/**
 * Add this server's credentials to a request of the explorer, for this server only:
 * a request elsewhere (an absolute URL of another origin) goes as it is.
 */
export function authorize(
  request: IExplorerRequest,
  settings: ServerConnection.ISettings,
  origin: string,
  cookies: string
): IExplorerRequest {
  const target = new URL(request.url, origin);
  if (target.origin !== origin) {
    return request;
  }
  request.headers = request.headers || {};
  if (settings.token) {
    request.headers['Authorization'] = `token ${settings.token}`;
  } else {
    const xsrf = cookieValue(cookies, '_xsrf');
    if (xsrf) {
      request.headers['X-XSRFToken'] = xsrf;
    }
  }
  return request;
}

/** Lab runs under JupyterHub (whose API token variable the curl line names). */
export function underHub(): boolean {
  return !!PageConfig.getOption('hubPrefix') || !!PageConfig.getOption('hubUser');
}

/** The parts of Swagger UI's system the curl line uses. */
interface ISwaggerSystem {
  React: { createElement: (...args: unknown[]) => unknown };
  fn: { requestSnippetGenerator_curl_bash: (request: unknown) => string };
}

/** A Swagger UI plugin: its "Curl" after Execute, without the token (`hideToken`). */
function curlWithoutToken(token: string, variable: string) {
  return () => ({
    wrapComponents: {
      curl: (_original: unknown, system: ISwaggerSystem) => (props: { request: unknown }) => {
        const line = system.fn.requestSnippetGenerator_curl_bash(props.request);
        const h = system.React.createElement;
        return h(
          'div',
          { className: 'curl-command' },
          h('h4', null, 'Curl'),
          h(
            'pre',
            { className: 'curl microlight', 'data-tfaas': 'explorer-curl' },
            hideToken(line, token, variable)
          )
        );
      }
    }
  });
}

/** The explorer's content: Swagger UI drawn into this widget's node. */
export class ExplorerContent extends Widget {
  constructor(
    readonly api: TFaaSApi,
    readonly url: string
  ) {
    super();
    this.addClass('jp-tfaas-explorer');
    this.node.dataset.tfaas = 'explorer';
  }

  /** Load Swagger UI (its own chunk) and draw the description. */
  async render(): Promise<void> {
    const [{ default: SwaggerUIBundle }] = await Promise.all([
      import('swagger-ui-dist/swagger-ui-bundle.js'),
      import('swagger-ui-dist/swagger-ui.css')
    ]);
    const settings = this.api.settings;
    SwaggerUIBundle({
      url: this.url,
      domNode: this.node,
      deepLinking: false,
      tryItOutEnabled: false,
      // no validator badge: it would ask an outside service about the description
      validatorUrl: null,
      plugins: [curlWithoutToken(settings.token, tokenVariable(underHub()))],
      requestInterceptor: (request: IExplorerRequest) =>
        authorize(request, settings, window.location.origin, document.cookie)
    });
  }
}

/** Open the explorer on one model's description (or the whole API's) in a tab. */
export function openExplorer(
  app: JupyterFrontEnd,
  api: TFaaSApi,
  words: Vocabulary,
  model: string | null
): MainAreaWidget<ExplorerContent> {
  const content = new ExplorerContent(api, descriptionUrl(api, model));
  const widget = new MainAreaWidget({ content });
  widget.id = `tfaas-explorer-${Date.now()}`;
  widget.title.label = `${words.word('openapi')}: ${model ?? words.word('title')}`;
  widget.title.icon = tfaasIcon;
  widget.title.closable = true;
  app.shell.add(widget, 'main');
  app.shell.activateById(widget.id);
  void content.render().catch(error => {
    content.node.textContent = `${words.word('openapi')}: ${(error as Error).message}`;
  });
  return widget;
}
