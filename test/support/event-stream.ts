import { request } from "undici";
import { waitFor } from "./node-process.js";

/** One line of GET /events (LiteFS's shape). */
export interface StreamEvent {
  type: "init" | "tx" | "primaryChange";
  db?: string;
  data: { isPrimary?: boolean; hostname?: string; txID?: string; postApplyChecksum?: string; pageSize?: number; commit?: number; timestamp?: string };
}

/** Follows a node's GET /events and keeps every event, in arrival order. */
export class EventStreamReader {
  readonly events: StreamEvent[] = [];
  /** When each event arrived here (performance.now()), index for index with `events`. */
  readonly arrivedAt: number[] = [];
  private readonly abort = new AbortController();
  private readonly done: Promise<void>;

  constructor(baseUrl: string, token?: string) {
    this.done = (async () => {
      const res = await request(`${baseUrl}/events`, { signal: this.abort.signal, headers: token ? { authorization: `Bearer ${token}` } : {}, bodyTimeout: 0 });
      if (res.statusCode !== 200) throw new Error(`/events answered ${res.statusCode}: ${await res.body.text()}`);
      let pending = "";
      for await (const chunk of res.body) {
        pending += chunk.toString();
        const lines = pending.split("\n");
        pending = lines.pop()!;
        for (const line of lines) {
          if (!line) continue;
          this.events.push(JSON.parse(line) as StreamEvent);
          this.arrivedAt.push(performance.now());
        }
      }
    })().catch((err: Error) => {
      if (!this.abort.signal.aborted) throw err;
    });
  }

  /** Waits until an event matching `pred` has arrived; returns it. */
  async waitFor(pred: (ev: StreamEvent) => boolean, what: string, timeoutMs = 20_000): Promise<StreamEvent> {
    await waitFor(() => this.events.some(pred), timeoutMs, `event: ${what} (have: ${JSON.stringify(this.events.slice(-5))})`);
    return this.events.find(pred)!;
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.done.catch(() => undefined);
  }
}
