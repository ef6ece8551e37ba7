import { describe, expect, it } from 'vitest';

import { num, when } from '../src/format';

describe('format', () => {
  it('writes integers as they are and other numbers with 4 significant digits', () => {
    expect(num(12)).toBe('12');
    expect(num(0.123456)).toBe('0.1235');
    expect(num(1234.5678)).toBe('1235');
    expect(num(undefined)).toBe('');
    expect(num(null)).toBe('');
  });

  it('writes no time for a missing timestamp', () => {
    expect(when(0)).toBe('');
    expect(when(null)).toBe('');
    expect(when(Date.UTC(2026, 0, 2))).toContain('2026');
  });
});
