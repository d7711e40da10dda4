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
 * A TCP proxy on loopback between a replica and its primary that can damage the primary's
 * answer: flip one byte, or cut the connection after N bytes. Each queued fault applies to one
 * connection; later connections pass through untouched.
 */
export class FaultProxy {
  private readonly server: net.Server;
  private readonly faults: Fault[] = [];
  private readonly sockets = new Set<net.Socket>();
  connections = 0;
  /** While set, new connections are closed at once (with dropAll: the replica is cut off). */
  refusing = false;
  /** Response bytes forwarded on the current connection (for tests waiting on a stall). */
  port = 0;

  private constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => this.onConnection(client));
  }

  static async start(targetPort: number): Promise<FaultProxy> {
    const proxy = new FaultProxy({ host: "127.0.0.1", port: targetPort });
    await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
    proxy.port = (proxy.server.address() as net.AddressInfo).port;
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
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
    const upstream = net.connect(this.target.port, this.target.host);
    this.sockets.add(client);
    this.sockets.add(upstream);
    let seen = 0;
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d: Buffer) => {
      let chunk = d;
      if (fault?.corruptAt !== undefined && fault.corruptAt >= seen && fault.corruptAt < seen + d.length) {
        chunk = Buffer.from(d);
        chunk[fault.corruptAt - seen] ^= 0xff;
      }
      if (fault?.cutAt !== undefined && seen + d.length >= fault.cutAt) {
        client.write(chunk.subarray(0, fault.cutAt - seen));
        client.destroy();
        upstream.destroy();
        return;
      }
      if (fault?.stallAt !== undefined && seen + d.length >= fault.stallAt) {
        if (seen < fault.stallAt) client.write(chunk.subarray(0, fault.stallAt - seen));
        seen += d.length;
        return;
      }
      seen += d.length;
      client.write(chunk);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("close", close);
    upstream.on("close", close);
    client.on("error", close);
    upstream.on("error", close);
  }
}
