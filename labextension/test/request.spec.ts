import { afterEach, describe, expect, it, vi } from 'vitest';

import { apiUrl, MlopsError, query, requestAPI, requestRaw } from '../src/api/request';
import { BASE, json, stubFetch } from './stubFetch';

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('requestAPI', () => {
  it('calls <base>/mlops/api/<endPoint> and answers the parsed JSON', async () => {
    const seen = stubFetch(() => json({ datasets: [{ name: 'cells' }] }));
    const answer = await requestAPI<{ datasets: { name: string }[] }>('datasets');
    expect(answer.datasets[0].name).toBe('cells');
    expect(seen.map(s => `${s.method} ${s.route}`)).toEqual(['GET datasets']);
  });

  it("throws an MlopsError with the server's message and status on a 4xx", async () => {
    stubFetch(() => json({ message: 'project "vision" is not yours' }, 403));
    const error = await requestAPI('projects/vision').catch(e => e);
    expect(error).toBeInstanceOf(MlopsError);
    expect(error.status).toBe(403);
    expect(error.message).toBe('project "vision" is not yours');
  });

  it('falls back to the status line when the error body is not JSON', async () => {
    stubFetch(
      () => new Response('<html>proxy error</html>', { status: 502, statusText: 'Bad Gateway' })
    );
    const error = await requestAPI('status').catch(e => e);
    expect(error.status).toBe(502);
    expect(error.message).toBe('502 Bad Gateway');
  });

  it('reports an unreachable server as status 0', async () => {
    stubFetch(() => Promise.reject(new TypeError('Failed to fetch')));
    const error = await requestAPI('status').catch(e => e);
    expect(error).toBeInstanceOf(MlopsError);
    expect(error.status).toBe(0);
    expect(error.message).toMatch(/unreachable/);
  });

  it('answers the text of a 2xx that is not JSON', async () => {
    stubFetch(() => new Response('name,hours\ntova,3', { status: 200 }));
    expect(await requestAPI<string>('usage?format=csv')).toBe('name,hours\ntova,3');
  });
});

describe('requestRaw', () => {
  it('hands back the response of a 2xx and throws the server message otherwise', async () => {
    stubFetch(s =>
      s.route.startsWith('ok') ? new Response('bytes') : json({ message: 'no such artifact' }, 404)
    );
    expect(await (await requestRaw('ok')).text()).toBe('bytes');
    const error = await requestRaw('missing').catch(e => e);
    expect([error.status, error.message]).toEqual([404, 'no such artifact']);
  });
});

describe('query and apiUrl', () => {
  it('leaves out empty values and repeats arrays', () => {
    expect(query({ a: '1', b: '', c: null, d: undefined, e: ['x', 'y'], n: 0 })).toBe(
      '?a=1&e=x&e=y&n=0'
    );
    expect(query({ a: undefined })).toBe('');
  });

  it('builds browser URLs under the lab base', () => {
    stubFetch();
    expect(apiUrl('datasets/objects/abc/preview')).toBe(
      `${BASE}mlops/api/datasets/objects/abc/preview`
    );
  });
});
