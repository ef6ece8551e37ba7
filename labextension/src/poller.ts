/**
 * The one poller of the lab extension: every `refreshInterval` milliseconds (the setting of
 * `jupyter-mlops:plugin`) it asks for the caller's new notifications and tells every live view
 * to load again. Panels do not keep timers of their own: `useRemote` and the sidebar sections
 * listen to `ticked`, so a new run, experiment, model, job state or deployment shows within one
 * interval, without a reload. A hidden browser tab is not polled.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { requestAPI } from './request';
import { INotificationFeed } from './tokens';

/** The interval when no setting says otherwise (milliseconds). */
export const DEFAULT_INTERVAL_MS = 3000;

export class LabPoller {
  private _ticked = new Signal<LabPoller, number>(this);
  private _notified = new Signal<LabPoller, INotificationFeed>(this);
  private _interval = DEFAULT_INTERVAL_MS;
  private _timer = 0;
  private _count = 0;
  private _since: number | null = null;
  private _running = false;

  /** Emitted at each poll (the poll's number): live views load again. */
  get ticked(): ISignal<LabPoller, number> {
    return this._ticked;
  }

  /** Emitted with the notifications that arrived since the last poll (none: not emitted). */
  get notified(): ISignal<LabPoller, INotificationFeed> {
    return this._notified;
  }

  get interval(): number {
    return this._interval;
  }

  /** Change the interval (at least 1 s); takes effect at the next poll. */
  set interval(ms: number) {
    this._interval = Math.max(1000, Number(ms) || DEFAULT_INTERVAL_MS);
  }

  /** Start polling (once; later calls do nothing). */
  start(): void {
    if (this._running) {
      return;
    }
    this._running = true;
    void this._poll(true);
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) {
        this.pollNow(); // back to the tab: bring everything up to date at once
      }
    });
  }

  /** Poll now (and restart the interval from here). */
  pollNow(): void {
    if (this._running) {
      window.clearTimeout(this._timer);
      void this._poll(false);
    }
  }

  private async _poll(first: boolean): Promise<void> {
    try {
      if (!document.hidden) {
        if (!first) {
          this._ticked.emit(++this._count);
        }
        await this._fetchNotifications();
      }
    } finally {
      this._timer = window.setTimeout(() => void this._poll(false), this._interval);
    }
  }

  private async _fetchNotifications(): Promise<void> {
    let feed: INotificationFeed;
    try {
      // The first poll reads the newest page to show what is still unread; later polls only
      // what came after the last one seen.
      feed = await requestAPI<INotificationFeed>(
        this._since === null ? 'notifications?limit=500' : `notifications?since=${this._since}`
      );
    } catch {
      return; // a server without the control plane (or a blip): the next poll tries again
    }
    const first = this._since === null;
    this._since = Math.max(this._since ?? 0, feed.last_id);
    const fresh = first
      ? feed.notifications.filter(n => !n.read).slice(-5)
      : feed.notifications;
    if (fresh.length > 0) {
      this._notified.emit({ ...feed, notifications: fresh });
    }
  }
}

/** The poller every view of the extension shares. */
export const labPoller = new LabPoller();
