import * as net from "node:net";

export interface Fault {
  /** Flip the byte at this offset of the server's response (counted from the first byte). */
  corruptAt?: number;
  /** Close both sides once this many response bytes went through. */
  cutAt?: number;
  /** Stop forwarding the response after this many bytes (the connection stays open). */
  stallAt?: number;
}

/**
 * What a network does to the bytes of a TCP connection, in each direction (the kernel here has
 * no netem, so the proxy plays the WAN). TCP never loses bytes: a lost segment arrives one
 * retransmission timeout late, and everything sent after it waits behind it (in-order delivery).
 */
export interface LinkConditions {
  /** Added to every chunk in each direction: a round trip through the proxy costs twice this. */
  oneWayMs?: number;
  /** Probability that a chunk is lost once: it (and what follows) arrives `retransmitMs` late. */
  loss?: number;
  /** A lost chunk's delay: Linux's minimum retransmission timeout, 200 ms, by default. */
  retransmitMs?: number;
  /** Probability per chunk that the connection is reset (a burst of loss TCP gives up on). */
  reset?: number;
}

export interface FaultProxyOptions {
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port to listen on (default: any free one). */
  port?: number;
  /** The target's address (default 127.0.0.1). */
  targetHost?: string;
}

/** One direction of a connection: chunks leave in order, each at its own time. */
class DelayedPipe {
  private readonly queue: Array<{ at: number; chunk: Buffer | "end" | "destroy" }> = [];
  private timer: NodeJS.Timeout | null = null;
  private lastAt = 0;

  constructor(private readonly to: net.Socket) {}

  /** "end" or "destroy": end or destroy the destination once everything before it went out. */
  send(chunk: Buffer | "end" | "destroy", delayMs: number): void {
    if (delayMs <= 0 && this.queue.length === 0) return this.deliver(chunk);
    this.lastAt = Math.max(this.lastAt, performance.now() + delayMs);
    this.queue.push({ at: this.lastAt, chunk });
    this.schedule();
  }

  clear(): void {
    this.queue.length = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.timer || this.queue.length === 0) return;
    this.timer = setTimeout(() => this.pump(), Math.max(0, this.queue[0].at - performance.now()));
  }

  private pump(): void {
    this.timer = null;
    const now = performance.now();
    while (this.queue.length && this.queue[0].at <= now + 1) this.deliver(this.queue.shift()!.chunk);
    this.schedule();
  }

  private deliver(chunk: Buffer | "end" | "destroy"): void {
    if (chunk === "end") this.to.end();
    else if (chunk === "destroy") this.to.destroy();
    else if (this.to.writable) this.to.write(chunk);
  }
}

/**
 * A TCP proxy between a replica and its primary (or any client and server) that can damage the
 * server's answer: flip one byte, cut or stall the connection after N bytes. Each queued fault
 * applies to one connection; later connections pass through untouched. It can also play a slow
 * or lossy network (`conditions`, or `conditionsFor` per client address: one proxy serving
 * several "regions"), and a partition (`refusing` and `dropAll`).
 */
export class FaultProxy {
  private readonly server: net.Server;
  private readonly faults: Fault[] = [];
  private readonly sockets = new Set<net.Socket>();
  connections = 0;
  /** While set, new connections are closed at once (with dropAll: the replica is cut off). */
  refusing = false;
  /** The network between client and target, for every connection (read per chunk: changes apply at once). */
  conditions: LinkConditions = {};
  /** Per client address (e.g. a replica's namespace IP); overrides `conditions` when it returns one. */
  conditionsFor: ((clientAddress: string) => LinkConditions | undefined) | null = null;
  /** Connections reset by `conditions.reset`. */
  resets = 0;
  port = 0;
  private host = "127.0.0.1";

  private constructor(private readonly target: { host: string; port: number }) {
    // Half-open: an end travels behind the data still delayed in the other direction.
    this.server = net.createServer({ allowHalfOpen: true }, (client) => this.onConnection(client));
  }

  static async start(targetPort: number, opts: FaultProxyOptions = {}): Promise<FaultProxy> {
    const proxy = new FaultProxy({ host: opts.targetHost ?? "127.0.0.1", port: targetPort });
    proxy.host = opts.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      proxy.server.once("error", reject);
      proxy.server.listen(opts.port ?? 0, proxy.host, () => resolve());
    });
    proxy.port = (proxy.server.address() as net.AddressInfo).port;
    return proxy;
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  inject(fault: Fault): void {
    this.faults.push(fault);
  }

  /** Drops every open connection (the replica sees its stream end abruptly). */
  dropAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(client: net.Socket): void {
    this.connections++;
    if (this.refusing) {
      client.destroy();
      return;
    }
    const fault = this.faults.shift();
    const upstream = net.connect({ port: this.target.port, host: this.target.host, allowHalfOpen: true });
    const clientAddress = client.remoteAddress ?? "";
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.sockets.add(client);
    this.sockets.add(upstream);
    const toUpstream = new DelayedPipe(upstream);
    const toClient = new DelayedPipe(client);
    for (const s of [client, upstream]) s.on("close", () => this.sockets.delete(s));
    /** At once, whatever is in flight: a reset, or a fault's cut. */
    const close = () => {
      toUpstream.clear();
      toClient.clear();
      client.destroy();
      upstream.destroy();
    };
    const conditions = (): LinkConditions => this.conditionsFor?.(clientAddress) ?? this.conditions;
    const forward = (pipe: DelayedPipe, chunk: Buffer) => {
      const c = conditions();
      if (c.reset && Math.random() < c.reset) {
        this.resets++;
        close();
        return;
      }
      pipe.send(chunk, (c.oneWayMs ?? 0) + (c.loss && Math.random() < c.loss ? (c.retransmitMs ?? 200) : 0));
    };
    let seen = 0;
    client.on("data", (d: Buffer) => forward(toUpstream, d));
    upstream.on("data", (d: Buffer) => {
      let chunk = d;
      if (fault?.corruptAt !== undefined && fault.corruptAt >= seen && fault.corruptAt < seen + d.length) {
        chunk = Buffer.from(d);
        chunk[fault.corruptAt - seen] ^= 0xff;
      }
      if (fault?.cutAt !== undefined && seen + d.length >= fault.cutAt) {
        client.write(chunk.subarray(0, fault.cutAt - seen));
        close();
        return;
      }
      if (fault?.stallAt !== undefined && seen + d.length >= fault.stallAt) {
        if (seen < fault.stallAt) client.write(chunk.subarray(0, fault.stallAt - seen));
        seen += d.length;
        return;
      }
      seen += d.length;
      forward(toClient, chunk);
    });
    // An end or a close travels behind the data sent before it.
    client.on("end", () => toUpstream.send("end", conditions().oneWayMs ?? 0));
    upstream.on("end", () => toClient.send("end", conditions().oneWayMs ?? 0));
    client.on("close", () => toUpstream.send("destroy", conditions().oneWayMs ?? 0));
    upstream.on("close", () => toClient.send("destroy", conditions().oneWayMs ?? 0));
    client.on("error", () => undefined);
    upstream.on("error", () => undefined);
  }
}
