/**
 * A job's log as a terminal would show it. Jobs write for terminals: colour codes (ANSI escape
 * sequences) and progress bars that redraw one line with carriage returns (tqdm). Shown raw in a
 * <pre>, the codes read as `[32m` litter and every redraw of a bar stays on the line.
 */

/** Escape sequences: CSI (colours, cursor moves), OSC (titles, links), and two-byte ones. */
// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/g;
/** A sequence cut at the end of the text (the rest arrives with the next chunk). */
// eslint-disable-next-line no-control-regex
const CUT_ESCAPE = /\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*)?$/;

/** Erase-line sequences (`ESC[K`, `ESC[2K`...) at the start of a redraw: the old text goes. */
// eslint-disable-next-line no-control-regex
const ERASE_LINE = /^(?:\x1b\[[0-?]*[ -/]*[@-~])*?\x1b\[[012]?K/;

/**
 * The text a terminal would show for `raw`: escape sequences removed, and each carriage return
 * moving back to the start of the line, so the next text writes over what was there (a
 * progress bar's last state stays, not its every step; a redraw starting with an erase-line
 * sequence replaces the line). `\r\n` is a plain line end.
 */
export function terminalText(raw: string): string {
  const strip = (text: string) => text.replace(ESCAPES, '').replace(CUT_ESCAPE, '');
  return raw
    .split('\n')
    .map(line => {
      if (!line.includes('\r')) {
        return strip(line);
      }
      let shown = '';
      for (const part of line.replace(/\r+$/, '').split('\r')) {
        const text = strip(part);
        shown = ERASE_LINE.test(part) ? text : text + shown.slice(text.length);
      }
      return shown;
    })
    .join('\n');
}
