import { KEPT_EVENTS, renderScreen, type WatchModel } from './screen.js';
import type { WatchReply } from '../../generated/tapeproxy.js';

/** Redraws at most this often, however fast events come. */
const REDRAW_MS = 100;

const ALT_SCREEN_ON = '\x1b[?1049h\x1b[?25l';
const ALT_SCREEN_OFF = '\x1b[?25h\x1b[?1049l';

/**
 * The full-screen view on a terminal: the alternate screen (the shell's screen comes back at the
 * end), redrawn in place from the top; `q` or Ctrl-C quits.
 */
export class TerminalView {
  private readonly model: WatchModel;
  private timer: NodeJS.Timeout | undefined;
  private readonly redraw = () => this.schedule();

  constructor(
    server: string,
    intervalMs: number,
    private readonly out: NodeJS.WriteStream,
    private readonly onQuit: () => void,
  ) {
    this.model = { server, intervalMs, events: [] };
  }

  start(): void {
    this.out.write(ALT_SCREEN_ON);
    this.out.on('resize', this.redraw);
    if (process.stdin.isTTY) {
      process.stdin.setRawMode(true);
      process.stdin.on('data', (key: Buffer) => {
        if (key.includes(0x71 /* q */) || key.includes(0x03 /* Ctrl-C */)) this.onQuit();
      });
    }
    this.draw();
  }

  update(reply: WatchReply): void {
    if (reply.snapshot) this.model.snapshot = reply.snapshot;
    if (reply.event) {
      this.model.events.push(reply.event);
      if (this.model.events.length > KEPT_EVENTS) this.model.events.shift();
    }
    this.schedule();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.out.off('resize', this.redraw);
    if (process.stdin.isTTY) {
      process.stdin.setRawMode(false);
      process.stdin.pause();
    }
    this.out.write(ALT_SCREEN_OFF);
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.draw();
    }, REDRAW_MS);
  }

  private draw(): void {
    const lines = renderScreen(this.model, this.out.columns || 80, this.out.rows || 24, !process.env.NO_COLOR); // no-color.org
    // Home, each line then clear to its end, then clear below: no flicker from clearing first.
    this.out.write(`\x1b[H${lines.join('\x1b[K\r\n')}\x1b[K\x1b[J`);
  }
}
