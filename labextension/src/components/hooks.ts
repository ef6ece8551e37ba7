/**
 * The request hooks the panels share: load a record (optionally polling it), submit a form,
 * and poll until something is final. Each keeps the error as the server's message, which
 * the panels show with `ErrorLine`.
 */
import React, { useCallback, useEffect, useRef, useState } from 'react';

import { labPoller } from '../poller';
import { requestAPI } from '../api/request';

/** What `useRemote` holds. */
export interface IRemote<T> {
  /** The last answer (kept when a later load fails, so a blip does not blank a list). */
  data: T | null;
  error: string | null;
  /** True while a load runs. */
  loading: boolean;
  reload: () => Promise<void>;
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
