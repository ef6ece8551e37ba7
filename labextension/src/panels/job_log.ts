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

/**
 * The text a terminal would show for `raw`: escape sequences removed, and each carriage return
 * moving back to the start of the line, so the next text writes over what was there (a
 * progress bar's last state stays, not its every step). `\r\n` is a plain line end.
 */
export function terminalText(raw: string): string {
  const text = raw.replace(ESCAPES, '').replace(CUT_ESCAPE, '');
  return text
    .split('\n')
    .map(line => {
      if (!line.includes('\r')) {
        return line;
      }
      let shown = '';
      for (const part of line.replace(/\r+$/, '').split('\r')) {
        shown = part + shown.slice(part.length);
      }
      return shown;
    })
    .join('\n');
}
