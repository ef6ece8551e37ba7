/**
 * The request hooks the panels share: read a list of the lab's model, load a record
 * (optionally polling it), submit a form, and poll until something is final. Each keeps the
 * error as the server's message, which the panels show with `ErrorLine`.
 */
import React, { useCallback, useEffect, useRef, useState } from 'react';

import { labPoller } from '../poller';
import { requestAPI } from '../api/request';
import type { IMlopsList } from '../tokens';

/** What `useRemote` holds. */
export interface IRemote<T> {
  /** The last answer (kept when a later load fails, so a blip does not blank a list). */
  data: T | null;
  error: string | null;
  /** True while a load runs. */
  loading: boolean;
  reload: () => Promise<void>;
}

/** What `usePolledList` gives a view: a list of the lab's model as it is now. */
export interface IPolledView<T, A> {
  /** The items of the last answer (kept when a later load fails). */
  items: readonly T[];
  /** The last answer (null before the first). */
  answer: A | null;
  error: string | null;
  /** Load the list now (after an action: every view shows its effect at once). */
  reload: () => Promise<void>;
}

/**
 * Read `list` of the lab's model (`IMlopsModel`): the view draws again when the list changed.
 * The first view to show a list starts it (a load now, then one per poll of the shared poller
 * for all views together); a change of `reloadOn` loads it again (a section's refresh tick).
 */
export function usePolledList<T, A>(list: IMlopsList<T, A>, reloadOn?: unknown): IPolledView<T, A> {
  const [, setVersion] = useState(0);
  const drawn = useRef<[A | null, string | null]>([null, null]);
  drawn.current = [list.answer, list.error];
  useEffect(() => {
    const redraw = () => setVersion(v => v + 1);
    list.changed.connect(redraw);
    if (drawn.current[0] !== list.answer || drawn.current[1] !== list.error) {
      redraw(); // it changed between the drawing and this subscription
    }
    if (!list.following) {
      void list.refresh();
    }
    return () => {
      list.changed.disconnect(redraw);
    };
  }, [list]);
  const mounted = useRef(false);
  useEffect(() => {
    if (mounted.current) {
      void list.refresh();
    }
    mounted.current = true;
  }, [list, reloadOn]);
  const reload = useCallback(() => list.refresh(), [list]);
  return { items: list.items, answer: list.answer, error: list.error, reload };
}

/**
 * Which request is the newest: answers arrive in any order (a slow first load can land after
 * the search that followed it), and only the newest may be shown.
 */
export function useLatest(): { next: () => number; is: (n: number) => boolean } {
  const counter = useRef(0);
  return useRef({
    next: () => ++counter.current,
    is: (n: number) => n === counter.current
  }).current;
}

/**
 * Load `load()`'s answer now and whenever `deps` change (pass a section's refresh tick there),
 * then at every poll of the shared `labPoller` (quietly: `loading` stays false and the answer
 * replaces the data when it comes), unless `live: false`. `everyMs` adds a timer of its own,
 * for the rare view that must not follow the shared interval. `auto: false` holds loading back
 * (a closed item) until it turns true or `reload` is called.
 */
export function useRemote<T>(
  load: () => Promise<T>,
  deps: React.DependencyList,
  options: { everyMs?: number; auto?: boolean; live?: boolean } = {}
): IRemote<T> {
  const { everyMs = 0, auto = true, live = true } = options;
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const latest = useLatest();
  const reload = useCallback(async (quiet: boolean = false) => {
    const mine = latest.next();
    if (!quiet) {
      setLoading(true);
    }
    try {
      const answer = await load();
      if (latest.is(mine)) {
        setData(answer);
        setError(null);
      }
    } catch (e: any) {
      if (latest.is(mine)) {
        setError(e.message);
      }
    } finally {
      if (latest.is(mine)) {
        setLoading(false);
      }
    }
  }, deps);
  useEffect(() => {
    if (!auto) {
      return;
    }
    void reload();
    if (!everyMs) {
      return;
    }
    const timer = window.setInterval(() => void reload(), everyMs);
    return () => window.clearInterval(timer);
  }, [reload, auto, everyMs]);
  useEffect(() => {
    if (!auto || !live) {
      return;
    }
    const onTick = () => void reload(true);
    labPoller.ticked.connect(onTick);
    return () => {
      labPoller.ticked.disconnect(onTick);
    };
  }, [reload, auto, live]);
  const loud = useCallback(() => reload(), [reload]);
  return { data, error, loading, reload: loud };
}

/**
 * POST a form's body to `path`; `onDone` gets the answer. Returns the submit function, the
 * error of the last try (cleared once one succeeds) and whether a submit is under way.
 * `body` is called inside the try, so a body that cannot be built shows as the error too.
 */
export function useSubmit<T>(
  path: string,
  onDone: (answer: T) => void
): [(body: () => any) => Promise<void>, string | null, boolean] {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (body: () => any) => {
    setBusy(true);
    try {
      const answer = await requestAPI<T>(path, {
        method: 'POST',
        body: JSON.stringify(body())
      });
      setError(null);
      onDone(answer);
    } catch (e: any) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };
  return [submit, error, busy];
}

/**
 * Call `poll` now, then `ms` after each answer for as long as it answers true (the record is
 * not final yet). A timeout after each answer, not an interval, so a slow answer never
 * overlaps the next poll.
 */
export function usePollLoop(poll: () => Promise<boolean>, ms: number): void {
  useEffect(() => {
    let stopped = false;
    let timer = 0;
    const loop = async () => {
      if ((await poll()) && !stopped) {
        timer = window.setTimeout(loop, ms);
      }
    };
    void loop();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [poll, ms]);
}
