/**
 * The one poller of the lab extension: every `refreshInterval` milliseconds (the setting of
 * `jupyter-mlops:plugin`) it asks for the caller's new notifications and tells every live view
 * to load again. Panels do not keep timers of their own: `useRemote` and the sidebar sections
 * listen to `ticked`, so a new run, experiment, model, job state or deployment shows within one
 * interval, without a reload. A hidden browser tab is not polled. While the server does not
 * answer, the wait doubles at each failed poll (up to `maxBackoffMs`), so a lab left open on a
 * stopped server does not keep hammering it; the first answer brings the interval back.
 *
 * Other plugins reach it through the `IMlopsPoller` token (tokens.ts).
 */
import { ISignal, Signal } from '@lumino/signaling';

import { getNotifications, INotificationFeed } from './api/notifications';
import { IMlopsPoller } from './tokens';

/** The interval when no setting says otherwise (milliseconds). */
export const DEFAULT_INTERVAL_MS = 3000;

/** The longest wait between polls while the server does not answer (milliseconds). */
export const MAX_BACKOFF_MS = 60_000;

/** How the poller reads the feed: the newest page (`since` null) or what came after `since`. */
export type FeedReader = (since: number | null) => Promise<INotificationFeed>;

const readFeed: FeedReader = since => getNotifications(since === null ? { limit: 500 } : { since });

export class LabPoller implements IMlopsPoller {
  constructor(options: { readFeed?: FeedReader; maxBackoffMs?: number } = {}) {
    this._readFeed = options.readFeed ?? readFeed;
    this._maxBackoff = options.maxBackoffMs ?? MAX_BACKOFF_MS;
  }

  /** Emitted at each poll (the poll's number): live views load again. */
  get ticked(): ISignal<this, number> {
    return this._ticked;
  }

  /** Emitted with the notifications that arrived since the last poll (none: not emitted). */
  get notified(): ISignal<this, INotificationFeed> {
    return this._notified;
  }

  get interval(): number {
    return this._interval;
  }

  /** Change the interval (at least 1 s); takes effect at the next poll. */
  set interval(ms: number) {
    this._interval = Math.max(1000, Number(ms) || DEFAULT_INTERVAL_MS);
  }

  /** The wait before the next poll: the interval, doubled per failed poll in a row (capped). */
  get delay(): number {
    const backoff = this._interval * 2 ** Math.min(this._failures, 16);
    return Math.min(backoff, Math.max(this._maxBackoff, this._interval));
  }

  /** Start polling (once; later calls do nothing). */
  start(): void {
    if (this._running) {
      return;
    }
    this._running = true;
    void this._poll(true);
    document.addEventListener('visibilitychange', this._onVisible);
  }

  /** Stop polling (tests; a lab never stops it). */
  stop(): void {
    this._running = false;
    window.clearTimeout(this._timer);
    document.removeEventListener('visibilitychange', this._onVisible);
  }

  /** Poll now (and restart the interval from here). */
  pollNow(): void {
    if (this._running) {
      window.clearTimeout(this._timer);
      void this._poll(false);
    }
  }

  private _onVisible = (): void => {
    if (!document.hidden) {
      this.pollNow(); // back to the tab: bring everything up to date at once
    }
  };

  private async _poll(first: boolean): Promise<void> {
    try {
      if (!document.hidden) {
        if (!first) {
          this._ticked.emit(++this._count);
        }
        await this._fetchNotifications();
      }
    } finally {
      if (this._running) {
        this._timer = window.setTimeout(() => void this._poll(false), this.delay);
      }
    }
  }

  private async _fetchNotifications(): Promise<void> {
    let feed: INotificationFeed;
    try {
      // The first poll reads the newest page to show what is still unread; later polls only
      // what came after the last one seen.
      feed = await this._readFeed(this._since);
    } catch {
      this._failures++; // a server without the control plane, or a blip: wait longer
      return;
    }
    this._failures = 0;
    const first = this._since === null;
    this._since = Math.max(this._since ?? 0, feed.last_id);
    const fresh = first ? feed.notifications.filter(n => !n.read).slice(-5) : feed.notifications;
    if (fresh.length > 0) {
      this._notified.emit({ ...feed, notifications: fresh });
    }
  }

  private _ticked = new Signal<this, number>(this);
  private _notified = new Signal<this, INotificationFeed>(this);
  private _readFeed: FeedReader;
  private _maxBackoff: number;
  private _interval = DEFAULT_INTERVAL_MS;
  private _timer = 0;
  private _count = 0;
  private _failures = 0;
  private _since: number | null = null;
  private _running = false;
}

/** The poller every view of the extension shares (the plugin provides it as `IMlopsPoller`). */
export const labPoller = new LabPoller();
