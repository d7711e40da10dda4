import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { StoreError } from "./errors.js";

/** LiteFS cluster IDs: "LFSC" and 16 uppercase hex digits. */
export const CLUSTER_ID_PATTERN = /^LFSC[0-9A-F]{16}$/;
const FILE = "clusterid";

export function generateClusterId(): string {
  return `LFSC${randomBytes(8).toString("hex").toUpperCase()}`;
}

/** The cluster this node belongs to (data.dir/clusterid), or null before it joined one. */
export function readClusterId(dataDir: string): string | null {
  const file = path.join(dataDir, FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8").trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  if (!CLUSTER_ID_PATTERN.test(text)) {
    throw new StoreError("STORE_BAD_CLUSTER_ID", `${file}: not a cluster ID (expected LFSC and 16 hex digits, found ${JSON.stringify(text.slice(0, 40))})`);
  }
  return text;
}

export function writeClusterId(dataDir: string, id: string): void {
  if (!CLUSTER_ID_PATTERN.test(id)) throw new StoreError("STORE_BAD_CLUSTER_ID", `refusing to store malformed cluster ID ${JSON.stringify(id)}`);
  const file = path.join(dataDir, FILE);
  fs.writeFileSync(`${file}.tmp`, `${id}\n`);
  fs.renameSync(`${file}.tmp`, file);
}
