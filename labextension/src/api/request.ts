/**
 * The one caller of the server extension's HTTP API (`<base>/mlops/api/...`): the API modules
 * next to this file wrap it per capability, and views call those, never a URL of their own.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/**
 * An error answered by the jupyter_mlops server extension, with the reason the UI shows.
 */
export class MlopsError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

/**
 * Call a route of the server extension (`<base>/mlops/api/<endPoint>`).
 *
 * @throws MlopsError carrying the server's message on any non-2xx answer.
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = apiUrl(endPoint, settings);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new MlopsError(0, `Jupyter server unreachable: ${error}`);
  }
  const text = await response.text();
  let data: any = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON: keep the text as the message
    }
  }
  if (!response.ok) {
    const message =
      (data && (data.message || data.reason || data.error)) ||
      `${response.status} ${response.statusText}`;
    throw new MlopsError(response.status, message);
  }
  return data as T;
}

/** The browser URL of a route of the server extension (for `<img src>`, links, downloads). */
export function apiUrl(
  endPoint: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  return URLExt.join(settings.baseUrl, 'mlops', 'api', endPoint);
}

/**
 * Call a route whose answer is not JSON (an artifact, an image): the response, once it is 2xx.
 *
 * @throws MlopsError carrying the server's message on any non-2xx answer.
 */
export async function requestRaw(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<Response> {
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(apiUrl(endPoint, settings), init, settings);
  } catch (error) {
    throw new MlopsError(0, `Jupyter server unreachable: ${error}`);
  }
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new MlopsError(
      response.status,
      data.message || data.reason || `${response.status} ${response.statusText}`
    );
  }
  return response;
}

/** A query string (`?a=1&b=x&b=y`) of the given values; empty, null and undefined are left out. */
export function query(params: {
  [key: string]: string | number | string[] | undefined | null;
}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') {
      continue;
    }
    for (const one of Array.isArray(v) ? v : [v]) {
      q.append(k, String(one));
    }
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** One path segment of a URL (names may hold `/`, `?`, spaces). */
export const enc = encodeURIComponent;

/** A JSON request body with the given method. */
export function jsonBody(method: string, body: unknown = {}): RequestInit {
  return { method, body: JSON.stringify(body) };
}
