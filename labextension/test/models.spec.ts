import { Signal } from '@lumino/signaling';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { INotification } from '../src/api/notifications';
import { NotificationsModel } from '../src/models/notifications';
import { PolledList } from '../src/models/polledList';
import { json, stubFetch } from './stubFetch';

afterEach(() => {
  vi.unstubAllGlobals();
});

class Ticker {
  readonly ticked = new Signal<this, number>(this);
  readonly notified = new Signal<this, any>(this);
}

describe('PolledList', () => {
  it('loads nothing until first asked, then follows the ticks', async () => {
    const ticker = new Ticker();
    let answer = ['a'];
    const load = vi.fn(async () => answer);
    const list = new PolledList(load, ticker);
    let changes = 0;
    list.changed.connect(() => changes++);

    ticker.ticked.emit(1);
    expect(load).not.toHaveBeenCalled(); // no view uses it yet: no request

    await list.refresh();
    expect([list.items, changes]).toEqual([['a'], 1]);

    ticker.ticked.emit(2);
    await vi.waitFor(() => expect(load).toHaveBeenCalledTimes(2));
    expect(changes).toBe(1); // the same answer: no signal

    answer = ['a', 'b'];
    ticker.ticked.emit(3);
    await vi.waitFor(() => expect(changes).toBe(2));
    expect(list.items).toEqual(['a', 'b']);
  });

  it('keeps the items when a load fails, and drops answers older than the newest', async () => {
    const ticker = new Ticker();
    const pending: ((v: string[]) => void)[] = [];
    let fail = false;
    const list = new PolledList<string>(
      () =>
        fail
          ? Promise.reject(new Error('control plane unreachable'))
          : new Promise(r => pending.push(r)),
      ticker
    );
    const first = list.refresh();
    const second = list.refresh();
    pending[1](['new']);
    await second;
    pending[0](['old']); // the slower first answer lands last
    await first;
    expect(list.items).toEqual(['new']);

    fail = true;
    await list.refresh();
    expect(list.error).toBe('control plane unreachable');
    expect(list.items).toEqual(['new']);
  });
});

function note(id: number): INotification {
  return {
    id,
    user: 'tova',
    kind: 'job.failed',
    level: 'warning',
    message: `n${id}`,
    link: null,
    created: 0,
    read: false
  };
}

describe('NotificationsModel', () => {
  it('takes in what the poller brings once, and marks one read here and on the server', async () => {
    const seen = stubFetch(() => json({}));
    const ticker = new Ticker();
    const model = new NotificationsModel(ticker);
    const arrived: number[][] = [];
    model.changed.connect((_, fresh) => arrived.push(fresh.map(n => n.id)));

    ticker.notified.emit({ notifications: [note(1), note(2)], unread: 2, last_id: 2 });
    ticker.notified.emit({ notifications: [note(2), note(3)], unread: 3, last_id: 3 });
    expect(model.items.map(n => n.id)).toEqual([1, 2, 3]);
    expect(arrived).toEqual([[1, 2], [3]]);
    expect(model.unread).toBe(3);

    await model.markRead(2);
    expect(model.items.find(n => n.id === 2)?.read).toBe(true);
    expect(model.unread).toBe(2);
    expect(seen.map(s => `${s.method} ${s.route}`)).toEqual(['POST notifications/2/read']);
  });
});
