import { afterEach, describe, expect, it, vi } from 'vitest';

import { getDataset, objectUrl, setTag, uploadFile } from '../src/api/datasets';
import { predict, setMonitoring } from '../src/api/deployments';
import { artifactPath, compareRuns, listRuns } from '../src/api/experiments';
import { getJobLog, jobAction } from '../src/api/jobs';
import { lineagePath } from '../src/api/lineage';
import { registerModel } from '../src/api/models';
import { getNotifications } from '../src/api/notifications';
import { BASE, json, stubFetch } from './stubFetch';

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('API modules build their routes', () => {
  it('encodes names as one path segment', async () => {
    const seen = stubFetch(() => json({ name: 'a b', versions: [] }));
    await getDataset('a b/../x');
    await setTag('cells', 'my tag', 'v3');
    expect(seen.map(s => `${s.method} ${s.route}`)).toEqual([
      'GET datasets/a%20b%2F..%2Fx',
      'PUT datasets/cells/tags/my%20tag'
    ]);
    expect(JSON.parse(seen[1].body)).toEqual({ version: 'v3' });
  });

  it('keeps the folders of an uploaded file but encodes each name', async () => {
    const seen = stubFetch();
    await uploadFile('up-1', 'plate 1/img#2.png', new Blob(['px']));
    expect(seen[0].method).toBe('PUT');
    expect(seen[0].route).toBe('datasets/uploads/up-1/plate%201/img%232.png');
  });

  it('sends runs queries with repeated order_by and a default page size', async () => {
    const seen = stubFetch(() => json({ runs: [], next_page_token: null }));
    await listRuns('7', {
      filter: "params.lr = '0.1'",
      orderBy: ['metrics.map DESC', 'start_time']
    });
    const url = new URL(`http://x/${seen[0].route}`);
    expect(url.pathname).toBe('/experiments/7/runs');
    expect(url.searchParams.get('filter')).toBe("params.lr = '0.1'");
    expect(url.searchParams.getAll('order_by')).toEqual(['metrics.map DESC', 'start_time']);
    expect(url.searchParams.get('max_results')).toBe('100');
    expect(url.searchParams.has('page_token')).toBe(false);
  });

  it('joins compared run ids and posts registrations by model id or path', async () => {
    const seen = stubFetch(() => json({}));
    await compareRuns(['r1', 'r2'], ['map']);
    await registerModel('r1', { modelId: 'm-9' }, 'cells');
    await registerModel('r1', {}, 'cells');
    expect(seen[0].route).toBe('runs/compare?run_ids=r1%2Cr2&metrics=map');
    expect(JSON.parse(seen[1].body)).toEqual({ run_id: 'r1', model_id: 'm-9', name: 'cells' });
    expect(JSON.parse(seen[2].body)).toEqual({ run_id: 'r1', path: '', name: 'cells' });
    expect(artifactPath('r1', 'eval/detections.json')).toBe(
      'runs/r1/artifact?path=eval%2Fdetections.json'
    );
  });

  it('posts job actions and reads logs from an offset', async () => {
    const seen = stubFetch(() => json({ id: 4, state: 'queued' }));
    await jobAction(4, 'rerun', { exact: true });
    await getJobLog(4, 1024);
    expect(seen.map(s => `${s.method} ${s.route}`)).toEqual([
      'POST jobs/4/rerun',
      'GET jobs/4/logs?offset=1024'
    ]);
    expect(JSON.parse(seen[0].body)).toEqual({ exact: true });
  });

  it('sends a model input with its own content type', async () => {
    const seen = stubFetch(() => json([{ boxes: [] }]));
    await predict('cells-prod', new Blob(['a,b']), 'text/csv');
    await setMonitoring('cells-prod', {
      record_inputs: true,
      sample_rate: 0.5,
      retention_days: 7,
      drift_threshold: 0.2
    });
    expect(seen[0].route).toBe('deployments/cells-prod/predict');
    expect(seen[0].headers.get('Content-Type')).toBe('text/csv');
    expect(seen[1].method).toBe('PUT');
    expect(JSON.parse(seen[1].body).sample_rate).toBe(0.5);
  });

  it('reads the newest notifications first, then only newer ones', async () => {
    const seen = stubFetch(() => json({ notifications: [], unread: 0, last_id: 0 }));
    await getNotifications({ limit: 500 });
    await getNotifications({ since: 12 });
    expect(seen.map(s => s.route)).toEqual(['notifications?limit=500', 'notifications?since=12']);
  });

  it('routes lineage by kind and makes object URLs under the lab', () => {
    stubFetch();
    expect(lineagePath({ kind: 'dataset', name: 'cells', version: 'v2' })).toBe(
      'datasets/cells/versions/v2/lineage'
    );
    expect(lineagePath({ kind: 'deployment', name: 'prod' })).toBe('deployments/prod/lineage');
    expect(lineagePath({ kind: 'model', name: 'cell det', version: '3' })).toBe(
      'models/cell%20det/versions/3/lineage'
    );
    expect(objectUrl('ab12', 'thumbnail', 128)).toBe(
      `${BASE}mlops/api/datasets/objects/ab12/thumbnail?size=128`
    );
  });
});
