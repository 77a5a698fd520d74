/**
 * A `fetch` that reports upload progress, for `ServerConnection.makeSettings({fetch})`.
 *
 * `fetch` itself tells nothing about the bytes sent, so the request Lab prepared
 * (its URL, method, headers with the authentication, and body) is sent by an
 * XMLHttpRequest, whose upload events drive the progress bar.
 */

export function progressFetch(
  onProgress: (sent: number, total: number) => void
): (input: RequestInfo | URL, init?: RequestInit) => Promise<Response> {
  return async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = input instanceof Request ? input : new Request(input, init);
    const body = await request.blob();
    return new Promise<Response>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(request.method, request.url);
      xhr.withCredentials = request.credentials === 'include';
      request.headers.forEach((value, key) => xhr.setRequestHeader(key, value));
      xhr.responseType = 'blob';
      xhr.upload.onprogress = event => {
        onProgress(event.loaded, event.lengthComputable ? event.total : body.size);
      };
      xhr.onload = () => {
        onProgress(body.size, body.size);
        const headers = new Headers();
        for (const line of xhr
          .getAllResponseHeaders()
          .trim()
          .split(/[\r\n]+/)) {
          const at = line.indexOf(':');
          if (at > 0) {
            headers.append(line.slice(0, at).trim(), line.slice(at + 1).trim());
          }
        }
        resolve(
          new Response(xhr.response, {
            status: xhr.status,
            statusText: xhr.statusText,
            headers
          })
        );
      };
      xhr.onerror = () => reject(new TypeError('network error while uploading'));
      xhr.onabort = () => reject(new TypeError('upload aborted'));
      xhr.send(body);
    });
  };
}
