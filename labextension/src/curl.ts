/**
 * The panel's "copy curl" line: a prediction with the selected model on this server.
 *
 * The URL is the one the browser uses for the server, so under JupyterHub it is the
 * hub's public address with the user's prefix. The line never holds a secret; in the
 * `token` style (the `curlStyle` setting) it names a shell variable the user sets (a
 * hub API token from the hub's token page under a hub, else the server's token), in the
 * `keyfile` style it reads a TFaaS key from a file, as `%tfaas key create NAME` writes
 * one (`~/.tfaas/keys/NAME.key`).
 */

import { IPredictRequest } from './predict';

/** The token variable the line names, under a hub or not. */
export function tokenVariable(underHub: boolean): string {
  return underHub ? 'JUPYTERHUB_API_TOKEN' : 'JUPYTER_TOKEN';
}

/** A POSIX shell word: single quotes, with each quote closed, escaped and reopened. */
export function shellQuote(text: string): string {
  return /^[A-Za-z0-9_\-.,:/=@+%]+$/.test(text) ? text : "'" + text.replace(/'/g, "'\\''") + "'";
}

/** How the line authenticates: a token in a shell variable, or a key read from a file. */
export interface ICurlAuth {
  style: 'token' | 'keyfile';
  /** The key file of the `keyfile` style (`~/` for the home folder). */
  keyFile: string;
}

export const TOKEN_AUTH: Readonly<ICurlAuth> = { style: 'token', keyFile: '' };

/** A path as a shell word, a leading `~/` left to the shell to expand. */
export function shellPath(path: string): string {
  return path.startsWith('~/') ? '~/' + shellQuote(path.slice(2)) : shellQuote(path);
}

/** The `Authorization` header argument of the line (double-quoted, expanded by the shell). */
export function authHeader(auth: ICurlAuth, underHub: boolean): string {
  if (auth.style === 'keyfile') {
    return `"Authorization: Bearer $(cat ${shellPath(auth.keyFile)})"`;
  }
  return `"Authorization: token $${tokenVariable(underHub)}"`;
}

/** `curl ... -d '{...}' https://hub/user/alice/tfaas/json`. */
export function curlCommand(
  jsonUrl: string,
  request: IPredictRequest,
  underHub: boolean,
  auth: Readonly<ICurlAuth> = TOKEN_AUTH
): string {
  return [
    'curl',
    '-sS',
    '-H',
    authHeader(auth, underHub),
    '-H',
    shellQuote('Content-Type: application/json'),
    '-d',
    shellQuote(JSON.stringify(request)),
    shellQuote(jsonUrl)
  ].join(' ');
}

/**
 * Swagger UI's curl line with Lab's token (the interceptor sent it) replaced by the
 * shell variable that holds it, as the panel's Copy curl names it: the shown, copied
 * or screenshotted line never carries the secret. The line's words are single-quoted
 * (Swagger UI quotes each), so the variable goes between quotes to be expanded.
 */
export function hideToken(line: string, token: string, variable: string): string {
  return token ? line.split(token).join(`'"$${variable}"'`) : line;
}
