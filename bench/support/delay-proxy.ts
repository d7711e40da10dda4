/**
 * A TCP proxy on loopback that delays every chunk by `oneWayMs` in each direction (the kernel
 * here has no netem): a round trip through it costs 2 x oneWayMs more. Order is kept: every
 * chunk of a direction waits the same time. Closing the proxy closes every connection.
 */
import * as net from "node:net";

export class DelayProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(
    private readonly target: { host: string; port: number },
    private readonly oneWayMs: number,
  ) {
    this.server = net.createServer((client) => this.relay(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  private relay(client: net.Socket): void {
    const upstream = net.connect(this.target.port, this.target.host);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.setNoDelay(true);
      s.on("close", () => this.sockets.delete(s));
      s.on("error", () => undefined);
    }
    const pipe = (from: net.Socket, to: net.Socket) => {
      from.on("data", (chunk) => setTimeout(() => to.writable && to.write(chunk), this.oneWayMs));
      from.on("end", () => setTimeout(() => to.end(), this.oneWayMs));
      from.on("close", () => setTimeout(() => to.destroy(), this.oneWayMs));
    };
    pipe(client, upstream);
    pipe(upstream, client);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
