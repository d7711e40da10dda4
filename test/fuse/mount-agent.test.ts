import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { MountAgent as MountAgentType } from "../../src/fuse/mount-agent.js";
import { ROOT } from "../support/node-process.js";

// The built module: it starts its child from mount-agent-process.js beside it (dist, built by npm test).
const { MountAgent } = (await import(path.join(ROOT, "dist/src/fuse/mount-agent.js"))) as { MountAgent: typeof MountAgentType };

let dir: string;
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("MountAgent", () => {
  it("a request on a closed channel (the agent killed, its exit not yet seen) fails the request, not the daemon", async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "litefs-agent-"));
    const agent = new MountAgent(dir, pino({ level: "silent" }));
    agent.start();
    const child = (agent as unknown as { child: ChildProcess }).child;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(child.exitCode).toBeNull(); // a real agent, running
    child.disconnect(); // what a kill -9 of the agent leaves: the channel gone before 'exit'
    await expect(agent.holdWrites("x.db")).rejects.toMatchObject({ code: "AGENT_EXITED" });
    await exited;
    await agent.close();
  });
});
