/**
 * The TFaaS REST API of this Jupyter server, through Lab's `ServerConnection`:
 * Lab adds the authentication (token or cookie with its XSRF header) and the base
 * URL, hub prefixes included; this module never handles a token itself.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { IPredictRequest } from './predict';
import { progressFetch } from './transfer';

/** An error answer of the API, with the server's own message. */
export class TFaaSError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

export class TFaaSApi {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  /** The absolute URL of an endpoint, e.g. `url('json')`. */
  url(...parts: string[]): string {
    return URLExt.join(this.settings.baseUrl, 'tfaas', ...parts.map(encodeURIComponent));
  }

  async models(): Promise<unknown> {
    return this.call('GET', ['models']);
  }

  async status(): Promise<unknown> {
    return this.call('GET', ['status']);
  }

  async predict(request: IPredictRequest): Promise<unknown> {
    return this.call('POST', ['json'], JSON.stringify(request));
  }

  async remove(name: string): Promise<unknown> {
    return this.call('DELETE', ['delete', name]);
  }

  /** Serve a file or SavedModel folder of the server's contents, read on the server. */
  async uploadContents(path: string, name: string): Promise<unknown> {
    return this.call('POST', ['upload', 'contents'], JSON.stringify({ path, name }));
  }

  /** A TFaaS key: `{name, key, url, ...}` (the secret is in this answer only). */
  async createKey(name: string, scopes: string[] = ['predict']): Promise<unknown> {
    return this.call('POST', ['keys'], JSON.stringify({ name, scopes }));
  }

  /** `POST tfaas/upload` of a multipart form; `onProgress` gets (sent, total) bytes. */
  async upload(
    form: FormData,
    onProgress: (sent: number, total: number) => void
  ): Promise<unknown> {
    const settings = ServerConnection.makeSettings({
      ...this.settings,
      fetch: progressFetch(onProgress)
    });
    return this.call('POST', ['upload'], form, settings);
  }

  private async call(
    method: string,
    parts: string[],
    body?: string | FormData,
    settings: ServerConnection.ISettings = this.settings
  ): Promise<unknown> {
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(
        this.url(...parts),
        { method, body, cache: 'no-store' },
        settings
      );
    } catch (error) {
      throw new TFaaSError(`cannot reach the server: ${(error as Error).message}`, 0);
    }
    const text = await response.text();
    let doc: unknown = null;
    try {
      doc = text ? JSON.parse(text) : null;
    } catch {
      doc = null;
    }
    if (!response.ok) {
      const message =
        doc && typeof (doc as { error?: unknown }).error === 'string'
          ? (doc as { error: string }).error
          : `${response.status} ${response.statusText || 'error'}`;
      throw new TFaaSError(message, response.status);
    }
    return doc;
  }
}
