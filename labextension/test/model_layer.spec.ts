// @vitest-environment jsdom
/**
 * The lab's model layer: every list of `MlopsModel` asks its route once per tick of the poller
 * however many views show it, and `usePolledList` draws views from it.
 */
import { Signal } from '@lumino/signaling';
import React, { act } from 'react';
import { createRoot, Root } from 'react-dom/client';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { usePolledList } from '../src/components/hooks';
import { MlopsModel } from '../src/models';
import { PolledList } from '../src/models/polledList';
import { IMlopsList } from '../src/tokens';
import { json, stubFetch } from './stubFetch';

// React warns outside a test environment it knows of
(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

class Ticker {
  readonly ticked = new Signal<this, number>(this);
  readonly notified = new Signal<this, any>(this);
  interval = 3000;
  pollNow(): void {
    this.ticked.emit(0);
  }
}

const ANSWERS: Record<string, unknown> = {
  jobs: { jobs: [{ id: 7 }], queue: [{ id: null, mine: false, state: 'queued' }] },
  sweeps: { sweeps: [] },
  pipelines: { pipelines: [] },
  deployments: { deployments: [{ name: 'cells' }] },
  projects: { projects: [{ name: 'default' }], pages_url: '/services/mlops/projects' },
  'experiments?max_results=1000': { experiments: [{ experiment_id: '1' }] },
  'models?max_results=1000': { models: [{ name: 'detector' }] }
};

/** A view showing the names of a list, as the panels do. */
function Names(props: { list: IMlopsList<any, any>; tick?: number }): JSX.Element {
  const { items, error } = usePolledList(props.list, props.tick);
  const names = items.map(i => i.name ?? i.id ?? i.experiment_id).join(',');
  return React.createElement('span', null, error ?? names);
}

let root: Root | null = null;
afterEach(() => {
  act(() => root?.unmount());
  root = null;
  vi.unstubAllGlobals();
});

async function draw(element: React.ReactElement): Promise<HTMLElement> {
  const node = document.createElement('div');
  root = createRoot(node);
  await act(async () => root!.render(element));
  return node;
}

describe('MlopsModel', () => {
  it('asks each route once per tick, keeping what comes with a list', async () => {
    const seen = stubFetch(s => json(ANSWERS[s.route]));
    const ticker = new Ticker();
    const model = new MlopsModel(ticker);
    const lists = [
      model.jobs,
      model.sweeps,
      model.pipelines,
      model.deployments,
      model.projects,
      model.experiments,
      model.models
    ];
    ticker.ticked.emit(1);
    expect(seen).toHaveLength(0); // no view uses them yet
    await Promise.all(lists.map(l => l.refresh()));
    expect(seen.map(s => s.route).sort()).toEqual(Object.keys(ANSWERS).sort());

    seen.length = 0;
    ticker.ticked.emit(2);
    await vi.waitFor(() => expect(seen).toHaveLength(lists.length));
    expect(new Set(seen.map(s => s.route)).size).toBe(lists.length);
    expect(model.jobs.items).toEqual([{ id: 7 }]);
    expect(model.jobs.answer?.queue).toHaveLength(1);
    expect(model.projects.answer?.pages_url).toBe('/services/mlops/projects');
    expect(model.models.items).toEqual([{ name: 'detector' }]);
  });
});

describe('PolledList', () => {
  it('keeps the held answer while answers stay the same', async () => {
    const ticker = new Ticker();
    let answer = { jobs: [{ id: 1 }], queue: [] as number[] };
    const list = new PolledList(
      async () => structuredClone(answer),
      ticker,
      a => a.jobs
    );
    expect([list.following, list.answer]).toEqual([false, null]);
    await list.refresh();
    const first = list.items;
    await list.refresh();
    expect(list.items).toBe(first); // the same objects: views comparing them skip work
    answer = { jobs: [{ id: 1 }], queue: [1] }; // only what comes with the list changed
    await list.refresh();
    expect([list.following, list.answer?.queue]).toEqual([true, [1]]);
    expect(list.items).not.toBe(first);
  });
});

describe('usePolledList', () => {
  it('starts the list once for all views, then draws them from each answer', async () => {
    const ticker = new Ticker();
    let names = ['a'];
    const load = vi.fn(async () => names.map(name => ({ name })));
    const list = new PolledList(load, ticker);
    const node = await draw(
      React.createElement(
        'div',
        null,
        React.createElement(Names, { list }),
        React.createElement(Names, { list })
      )
    );
    expect(load).toHaveBeenCalledTimes(1);
    expect(node.textContent).toBe('aa');

    names = ['a', 'b'];
    await act(async () => ticker.ticked.emit(1));
    expect(load).toHaveBeenCalledTimes(2);
    expect(node.textContent).toBe('a,ba,b');
  });

  it('loads again when the section is refreshed, and shows a failed load', async () => {
    const ticker = new Ticker();
    let fail = false;
    const load = vi.fn(async () => {
      if (fail) {
        throw new Error('control plane unreachable');
      }
      return [{ name: 'a' }];
    });
    const list = new PolledList(load, ticker);
    const node = await draw(React.createElement(Names, { list, tick: 0 }));
    expect(node.textContent).toBe('a');

    fail = true;
    await act(async () => root!.render(React.createElement(Names, { list, tick: 1 })));
    expect(load).toHaveBeenCalledTimes(2);
    expect(node.textContent).toBe('control plane unreachable');
  });

  it('draws an answer that came between its first drawing and its subscription', async () => {
    const fake = {
      items: [] as { name: string }[],
      answer: null as { name: string }[] | null,
      error: null,
      following: true,
      changed: new Signal<any, void>({}),
      refresh: vi.fn(async () => undefined)
    };
    // drawn after the view and before its effects run: the answer lands in between
    function Answer(): null {
      fake.items = fake.answer = [{ name: 'early' }];
      fake.changed.emit();
      return null;
    }
    const node = await draw(
      React.createElement(
        'div',
        null,
        React.createElement(Names, { list: fake }),
        React.createElement(Answer)
      )
    );
    expect(node.textContent).toBe('early');
    expect(fake.refresh).not.toHaveBeenCalled(); // another view started it already
  });
});
