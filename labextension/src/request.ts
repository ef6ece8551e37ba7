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
  const url = URLExt.join(settings.baseUrl, 'mlops', 'api', endPoint);
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
