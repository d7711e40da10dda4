import type { FileKind } from "../store/database.js";

/** What a name in the mount's root refers to. */
export type MountEntry =
  | { type: "root" }
  | { type: "database-file"; db: string; kind: FileKind }
  | { type: "pos"; db: string }
  | { type: "primary" }
  | { type: "lag" };

export const PRIMARY_FILE = ".primary";
export const LAG_FILE = ".lag";

const SUFFIXES: ReadonlyArray<[string, FileKind | "pos"]> = [
  ["-journal", "journal"],
  ["-wal", "wal"],
  ["-shm", "shm"],
  ["-pos", "pos"],
];

/** Maps a FUSE path ("/name") to an entry; null for anything the mount cannot hold (subpaths). */
export function parseMountPath(p: string): MountEntry | null {
  if (p === "/") return { type: "root" };
  const name = p.slice(1);
  if (name.length === 0 || name.includes("/")) return null;
  if (name === PRIMARY_FILE) return { type: "primary" };
  if (name === LAG_FILE) return { type: "lag" };
  for (const [suffix, kind] of SUFFIXES) {
    if (name.length > suffix.length && name.endsWith(suffix)) {
      const db = name.slice(0, -suffix.length);
      return kind === "pos" ? { type: "pos", db } : { type: "database-file", db, kind };
    }
  }
  return { type: "database-file", db: name, kind: "database" };
}

export function fileName(db: string, kind: FileKind): string {
  return kind === "database" ? db : `${db}-${kind}`;
}
