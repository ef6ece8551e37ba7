// @vitest-environment jsdom
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { INotification, INotificationFeed } from '../src/api/notifications';
import { LabPoller } from '../src/poller';

function note(id: number, read = false): INotification {
  return {
    id,
    user: 'tova',
    kind: 'job.failed',
    level: 'warning',
    message: `n${id}`,
    link: null,
    created: 0,
    read
  };
}

function feed(notifications: INotification[], lastId: number): INotificationFeed {
  return { notifications, unread: notifications.filter(n => !n.read).length, last_id: lastId };
}

/** Let the poller's pending promise callbacks run. */
const settle = () => vi.advanceTimersByTimeAsync(0);

describe('LabPoller', () => {
  let poller: LabPoller;
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    poller?.stop();
    vi.useRealTimers();
  });

  it('reads the newest page first, then only what came after, ticking at each interval', async () => {
    const asked: (number | null)[] = [];
    const answers = [feed([note(1, true), note(2), note(3)], 3), feed([note(4)], 4)];
    poller = new LabPoller({
      readFeed: async since => {
        asked.push(since);
        return answers.shift() ?? feed([], 4);
      }
    });
    poller.interval = 2000;
    const ticks: number[] = [];
    const notified: number[][] = [];
    poller.ticked.connect((_, n) => ticks.push(n));
    poller.notified.connect((_, f) => notified.push(f.notifications.map(n => n.id)));

    poller.start();
    await settle();
    expect(asked).toEqual([null]);
    expect(ticks).toEqual([]); // the first poll only reads notifications
    expect(notified).toEqual([[2, 3]]); // the unread ones of the first page

    await vi.advanceTimersByTimeAsync(1999);
    expect(ticks).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(ticks).toEqual([1]);
    expect(asked).toEqual([null, 3]);
    expect(notified).toEqual([[2, 3], [4]]);

    await vi.advanceTimersByTimeAsync(2000);
    expect(ticks).toEqual([1, 2]);
    expect(asked).toEqual([null, 3, 4]);
    expect(notified.length).toBe(2); // nothing new: not emitted
  });

  it('doubles the wait after each failed poll up to the cap, and comes back on success', async () => {
    let failing = true;
    poller = new LabPoller({
      maxBackoffMs: 10_000,
      readFeed: async () => {
        if (failing) {
          throw new Error('503');
        }
        return feed([], 0);
      }
    });
    poller.interval = 1000;
    const at: number[] = [];
    poller.ticked.connect(() => at.push(Date.now()));
    const t0 = Date.now();
    poller.start();
    await settle();
    expect(poller.delay).toBe(2000);
    await vi.advanceTimersByTimeAsync(2000 + 4000 + 8000 + 10_000 + 10_000);
    expect(at.map(t => t - t0)).toEqual([2000, 6000, 14_000, 24_000, 34_000]);

    failing = false;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(poller.delay).toBe(1000);
    await vi.advanceTimersByTimeAsync(1000);
    expect(at.map(t => t - t0).slice(-2)).toEqual([44_000, 45_000]);
  });

  it('keeps the interval at 1 s or more', () => {
    poller = new LabPoller();
    poller.interval = 10;
    expect(poller.interval).toBe(1000);
    poller.interval = Number.NaN;
    expect(poller.interval).toBe(3000);
  });
});
