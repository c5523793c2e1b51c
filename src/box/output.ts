/**
 * Gathers a command's output into `output` frames: a frame goes out after
 * `flushMs` of quiet, when a chunk reaches MAX_CHUNK characters, or when the
 * stream switches (so that stdout and stderr stay in the order they came).
 */
import type { OutputFrame } from "../bridge/protocol.ts";

/** Characters per frame: at most 4 bytes each in UTF-8, far under the 1 MiB frame limit. */
export const MAX_CHUNK = 64 * 1024;

export class OutputGatherer {
  private readonly id: string;
  private readonly flushMs: number;
  private readonly emitFrame: (frame: OutputFrame) => void;
  private seq = 0;
  private stream: "stdout" | "stderr" = "stdout";
  private data = "";
  private timer: NodeJS.Timeout | null = null;

  constructor(id: string, flushMs: number, emitFrame: (frame: OutputFrame) => void) {
    this.id = id;
    this.flushMs = flushMs;
    this.emitFrame = emitFrame;
  }

  write(stream: "stdout" | "stderr", data: string): void {
    if (stream !== this.stream) this.flush();
    this.stream = stream;
    this.data += data;
    while (this.data.length >= MAX_CHUNK) {
      const chunk = this.data.slice(0, MAX_CHUNK);
      this.data = this.data.slice(MAX_CHUNK);
      this.emit(chunk);
    }
    if (this.data.length > 0 && this.timer === null) this.timer = setTimeout(() => this.flush(), this.flushMs);
  }

  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.data.length === 0) return;
    const chunk = this.data;
    this.data = "";
    this.emit(chunk);
  }

  private emit(data: string): void {
    this.emitFrame({ type: "output", id: this.id, seq: this.seq++, stream: this.stream, data });
  }
}
