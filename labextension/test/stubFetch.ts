/**
 * A fetch stub for the API modules' tests: records each request and answers from a handler.
 */
import { PageConfig } from '@jupyterlab/coreutils';
import { vi } from 'vitest';

/** The lab's base URL in the tests (absolute, as Node's Request needs). */
export const BASE = 'http://lab.test/user/tova/';

export interface ISeen {
  method: string;
  /** Path and query after `<base>mlops/api/`, without JupyterLab's cache buster. */
  route: string;
  headers: Headers;
  body: string;
}

/** Install a fetch answering `handler(route)`; returns the requests seen. */
export function stubFetch(
  handler: (seen: ISeen) => Response | Promise<Response> = () => json({})
): ISeen[] {
  PageConfig.setOption('baseUrl', BASE);
  PageConfig.setOption('token', '');
  const seen: ISeen[] = [];
  vi.stubGlobal('fetch', async (request: Request) => {
    const url = new URL(request.url);
    // JupyterLab appends a numeric cache buster (`&1733...`) to every request
    const query = url.search
      .slice(1)
      .split('&')
      .filter(p => p && !/^\d+$/.test(p))
      .join('&');
    const prefix = new URL(BASE).pathname + 'mlops/api/';
    if (!url.pathname.startsWith(prefix)) {
      throw new Error(`outside the API: ${url.pathname}`);
    }
    const one: ISeen = {
      method: request.method,
      route: url.pathname.slice(prefix.length) + (query ? `?${query}` : ''),
      headers: request.headers,
      body: request.body ? await request.text() : ''
    };
    seen.push(one);
    return handler(one);
  });
  return seen;
}

/** A JSON answer. */
export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' }
  });
}
