/**
 * The panel's "copy curl" line: a prediction with the selected model on this server.
 *
 * The URL is the one the browser uses for the server, so under JupyterHub it is the
 * hub's public address with the user's prefix; the token is a shell variable the user
 * sets (a hub API token from the hub's token page under a hub, else the server's token).
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

/** `curl ... -d '{...}' https://hub/user/alice/tfaas/json`. */
export function curlCommand(jsonUrl: string, request: IPredictRequest, underHub: boolean): string {
  return [
    'curl',
    '-sS',
    '-H',
    `"Authorization: token $${tokenVariable(underHub)}"`,
    '-H',
    shellQuote('Content-Type: application/json'),
    '-d',
    shellQuote(JSON.stringify(request)),
    shellQuote(jsonUrl)
  ].join(' ');
}
