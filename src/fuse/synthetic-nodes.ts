import * as fs from "node:fs";
import type { Database } from "../store/database.js";
import type { NodeStat } from "./database-node.js";

/**
 * Files whose content the mount makes up: `<db>-pos`, `.primary`, `.lag`. Read-only. Their
 * mtime moves whenever their content changes so the kernel's auto_cache never serves an old
 * copy to a new open.
 */
export class SyntheticFileNode {
  private readonly data: Buffer;

  constructor(
    content: string,
    private readonly mtime: number,
  ) {
    this.data = Buffer.from(content);
  }

  canOpenForWrite(): boolean {
    return false;
  }

  stat(): NodeStat {
    return { mode: fs.constants.S_IFREG | 0o444, size: this.data.length, mtime: this.mtime, atime: this.mtime, ctime: this.mtime };
  }

  read(buf: Buffer, len: number, pos: number): number {
    if (pos >= this.data.length) return 0;
    return this.data.copy(buf, 0, pos, Math.min(this.data.length, pos + len));
  }
}

/** `<db>-pos`: the position as `%016x/%016x\n`. */
export function posNode(db: Database): SyntheticFileNode {
  return new SyntheticFileNode(`${db.position.toString()}\n`, db.positionChangedAt);
}

/** `.primary`: the primary's hostname, only on a connected replica. */
export function primaryNode(hostname: string, version: number): SyntheticFileNode {
  return new SyntheticFileNode(`${hostname}\n`, version);
}

/** `.lag`: replication lag in milliseconds. */
export function lagNode(lagMs: number, version: number): SyntheticFileNode {
  return new SyntheticFileNode(`${Math.round(lagMs)}\n`, version);
}
