/**
 * A list the server holds (my jobs, the deployments) kept in the browser for every view that
 * shows it: loaded on first use, then again at each tick of the shared poller, with `changed`
 * emitted when an answer differs from what is held. Views read `items` and listen to
 * `changed` instead of each asking the server.
 */
import { ISignal, Signal } from '@lumino/signaling';

/** Something that ticks (the shared poller). */
export interface ITicker {
  readonly ticked: ISignal<any, number>;
}

export class PolledList<T> {
  constructor(
    private readonly _load: () => Promise<T[]>,
    ticker: ITicker
  ) {
    ticker.ticked.connect(this._onTick, this);
  }

  /** The items of the last answer (empty before the first). */
  get items(): readonly T[] {
    return this._items;
  }

  /** The reason the last load failed (null once one succeeds). */
  get error(): string | null {
    return this._error;
  }

  /** Emitted when the items or the error changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /**
   * Load now; from the first call on, the list also follows the poller. Answers that arrive
   * after a newer request's answer are dropped.
   */
  async refresh(): Promise<void> {
    this._active = true;
    const mine = ++this._requests;
    try {
      const items = await this._load();
      if (mine !== this._requests) {
        return;
      }
      const same = this._error === null && JSON.stringify(items) === JSON.stringify(this._items);
      this._items = items;
      this._error = null;
      if (!same) {
        this._changed.emit();
      }
    } catch (e: any) {
      if (mine === this._requests && this._error !== e.message) {
        this._error = e.message; // keep the items: a blip must not blank the list
        this._changed.emit();
      }
    }
  }

  private _onTick(): void {
    if (this._active) {
      void this.refresh();
    }
  }

  private _items: T[] = [];
  private _error: string | null = null;
  private _active = false;
  private _requests = 0;
  private _changed = new Signal<this, void>(this);
}
