import { describe, expect, it } from 'vitest';

import { terminalText } from '../src/panels/job_log';

describe('terminalText', () => {
  it('removes colour codes and other escape sequences', () => {
    const raw = '\x1b[32mINFO\x1b[0m scoring \x1b[1;31m3\x1b[0m files\x1b]0;title\x07 done\n';
    expect(terminalText(raw)).toBe('INFO scoring 3 files done\n');
  });

  it('keeps the last state of a progress bar redrawn with carriage returns', () => {
    const raw =
      'start\n' +
      '\r  0%|          | 0/40 [00:00<?, ?it/s]' +
      '\r 50%|#####     | 20/40 [00:01<00:01, 19.9it/s]' +
      '\r100%|##########| 40/40 [00:02<00:00, 19.9it/s]\n' +
      'wrote predictions.csv\n';
    expect(terminalText(raw)).toBe(
      'start\n100%|##########| 40/40 [00:02<00:00, 19.9it/s]\nwrote predictions.csv\n'
    );
  });

  it('writes a shorter redraw over the start of the line only', () => {
    expect(terminalText('downloading 10 MB\rdone')).toBe('doneloading 10 MB');
  });

  it('lets a redraw that erases the line replace it (rich and pip bars)', () => {
    expect(terminalText('downloading 10 MB\r\x1b[2Kdone\n')).toBe('done\n');
  });

  it('treats CRLF as a plain line end', () => {
    expect(terminalText('one\r\ntwo\r\n')).toBe('one\ntwo\n');
  });

  it('hides an escape sequence cut at the end of a chunk until the rest arrives', () => {
    expect(terminalText('row 1\n\x1b[3')).toBe('row 1\n');
    expect(terminalText('row 1\n\x1b[32mrow 2')).toBe('row 1\nrow 2');
  });

  it('leaves plain text alone', () => {
    expect(terminalText('a\tb\n\nc')).toBe('a\tb\n\nc');
  });
});
