// Progress of one upload or download on stderr, and byte counts as people read them.
import type { CommandIo } from "./client-command.js";

/** 1536 → "1.5 KiB". */
export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/**
 * Progress of one transfer on stderr: on a terminal a bar redrawn in place at most every 100 ms; otherwise a plain line
 * at each tenth of a known size (or every 64 MiB of an unknown one) and at the end, so logs stay readable.
 */
export class Progress {
  private done = 0;
  private lastDraw = 0;
  private lastStep = -1;
  private readonly started = Date.now();

  constructor(
    private readonly io: CommandIo,
    private readonly label: string,
    private readonly total: number | null,
    private readonly tty: boolean,
    private readonly quiet: boolean,
  ) {}

  add(n: number): void {
    this.done += n;
    if (this.quiet) return;
    if (this.tty) {
      const now = Date.now();
      if (now - this.lastDraw >= 100) {
        this.lastDraw = now;
        this.io.err(`\r${this.bar()}`);
      }
      return;
    }
    const step = this.total ? Math.floor((this.done / Math.max(1, this.total)) * 10) : Math.floor(this.done / (64 * 1024 * 1024));
    if (step > this.lastStep && step > 0 && (this.total === null || this.done < this.total)) {
      this.lastStep = step;
      this.io.err(`${this.line()}\n`);
    }
  }

  finish(): void {
    if (this.quiet) return;
    if (this.tty) this.io.err(`\r${this.bar()}\n`);
    else this.io.err(`${this.line()}\n`);
  }

  private rate(): string {
    const s = Math.max(0.001, (Date.now() - this.started) / 1000);
    return `${bytes(Math.round(this.done / s))}/s`;
  }

  private line(): string {
    const pct = this.total ? ` (${Math.floor((this.done / Math.max(1, this.total)) * 100)}%)` : "";
    return `${this.label}: ${this.done}${this.total !== null ? `/${this.total}` : ""} bytes${pct}, ${this.rate()}`;
  }

  private bar(): string {
    if (!this.total) return `${this.label} ${bytes(this.done)} ${this.rate()}\x1b[K`;
    const width = 30;
    const frac = Math.min(1, this.done / this.total);
    const filled = Math.round(frac * width);
    return `${this.label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(Math.floor(frac * 100)).padStart(3)}% ${bytes(this.done)}/${bytes(this.total)} ${this.rate()}\x1b[K`;
  }
}
