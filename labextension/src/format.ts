/**
 * How the lab writes numbers and times people compare: pure functions, no DOM, no I/O.
 */

/** A short local date-time for a millisecond timestamp (`''` for none). */
export function when(ms?: number | null): string {
  return ms ? new Date(ms).toLocaleString() : '';
}

/** A metric value: integers as they are, others with 4 significant digits (`''` for none). */
export function num(v: number | undefined | null): string {
  if (v === undefined || v === null) {
    return '';
  }
  return Number.isInteger(v) ? String(v) : Number(v).toPrecision(4);
}
