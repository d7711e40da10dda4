import * as fs from "node:fs";

/** Messages between the daemon (apply-agent.ts) and the apply agent (apply-agent-process.ts). */
/** Opened with O_NOATIME so the FUSE adapter can tell the agent's writable opens from an app's. */
export const APPLY_OPEN_FLAG = fs.constants.O_NOATIME;

export interface ApplyRequest {
  id: number;
  op: "apply";
  mnt: string;
  db: string;
  ltxPath: string;
  lockTimeoutMs: number;
}

export type ApplyResponse = { id: number; ok: true; pages: number } | { id: number; ok: false; error: string };

