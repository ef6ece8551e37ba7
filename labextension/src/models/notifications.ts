/**
 * The caller's notifications as the lab holds them: what the poller brought (newest last, the
 * last `MAX_KEPT`), the server's unread count, and marking one read.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { INotification, INotificationFeed, markNotificationRead } from '../api/notifications';

/** How many notifications the lab keeps in memory. */
export const MAX_KEPT = 100;

export class NotificationsModel {
  constructor(source: { readonly notified: ISignal<any, INotificationFeed> }) {
    source.notified.connect((_, feed) => this.add(feed), this);
  }

  /** The notifications seen in this lab session, oldest first. */
  get items(): readonly INotification[] {
    return this._items;
  }

  /** How many of the caller's notifications are unread (on the server, as last reported). */
  get unread(): number {
    return this._unread;
  }

  /** Emitted with the notifications that just arrived (or `[]` when one was marked read). */
  get changed(): ISignal<this, INotification[]> {
    return this._changed;
  }

  /** Take in a feed page (what the poller brings). */
  add(feed: INotificationFeed): void {
    const known = new Set(this._items.map(n => n.id));
    const fresh = feed.notifications.filter(n => !known.has(n.id));
    this._items = [...this._items, ...fresh].slice(-MAX_KEPT);
    this._unread = feed.unread;
    this._changed.emit(fresh);
  }

  /** Mark one notification read, here and on the server. */
  async markRead(id: number): Promise<void> {
    const n = this._items.find(item => item.id === id);
    if (n && !n.read) {
      this._items = this._items.map(item => (item.id === id ? { ...item, read: true } : item));
      this._unread = Math.max(0, this._unread - 1);
      this._changed.emit([]);
    }
    await markNotificationRead(id);
  }

  private _items: INotification[] = [];
  private _unread = 0;
  private _changed = new Signal<this, INotification[]>(this);
}
