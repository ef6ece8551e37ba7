/**
 * A list the server holds (my jobs, the deployments, my projects) kept in the browser for every
 * view that shows it: loaded on first use, then again at each tick of the shared poller, with
 * `changed` emitted when an answer differs from what is held. Views read `items` (or the whole
 * `answer`, for what comes with the list) and listen to `changed` instead of each asking the
 * server, so one request per tick serves them all and no two views disagree.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { IMlopsList } from '../tokens';

/** Something that ticks (the shared poller). */
export interface ITicker {
  readonly ticked: ISignal<any, number>;
}

export class PolledList<T, A = T[]> implements IMlopsList<T, A> {
  /**
   * @param _load - one request for the whole answer.
   * @param ticker - the shared poller.
   * @param _pick - the list in an answer (the answer itself when it is the list).
   */
  constructor(
    private readonly _load: () => Promise<A>,
    ticker: ITicker,
    private readonly _pick: (answer: A) => T[] = answer => answer as unknown as T[]
  ) {
    ticker.ticked.connect(this._onTick, this);
  }

  /** The items of the last answer (empty before the first). */
  get items(): readonly T[] {
    return this._items;
  }

  /** The last answer (null before the first). */
  get answer(): A | null {
    return this._answer;
  }

  /** The reason the last load failed (null once one succeeds). */
  get error(): string | null {
    return this._error;
  }

  /** Whether the list follows the poller (from the first `refresh` on). */
  get following(): boolean {
    return this._active;
  }

  /** Emitted when the answer or the error changed. */
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
      const answer = await this._load();
      if (mine !== this._requests) {
        return;
      }
      const text = JSON.stringify(answer);
      const same = this._error === null && this._answer !== null && text === this._text;
      this._error = null;
      if (!same) {
        // An unchanged answer keeps the held objects, so views that compare them skip work.
        this._answer = answer;
        this._items = this._pick(answer);
        this._text = text;
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

  private _answer: A | null = null;
  private _items: T[] = [];
  private _text = '';
  private _error: string | null = null;
  private _active = false;
  private _requests = 0;
  private _changed = new Signal<this, void>(this);
}
