/**
 * A TCP proxy on loopback that delays every chunk by `oneWayMs` in each direction (the kernel
 * here has no netem): a round trip through it costs 2 x oneWayMs more. Order is kept. Closing the
 * proxy closes every connection. The test suite's FaultProxy does the work (test/support).
 */
import { FaultProxy } from "../../test/support/fault-proxy.js";

export class DelayProxy {
  private proxy: FaultProxy | null = null;
  port = 0;

  constructor(
    private readonly target: { host: string; port: number },
    private readonly oneWayMs: number,
  ) {}

  async listen(): Promise<number> {
    this.proxy = await FaultProxy.start(this.target.port, { targetHost: this.target.host });
    this.proxy.conditions = { oneWayMs: this.oneWayMs };
    this.port = this.proxy.port;
    return this.port;
  }

  async close(): Promise<void> {
    await this.proxy?.close();
  }
}
