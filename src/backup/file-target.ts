import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import type { Readable } from "node:stream";
import { BackupError } from "./errors.js";
import { objectPath, parseObjectPath, type BackupFile } from "./layout.js";
import type { BackupTarget, ObjectRef } from "./target.js";

/**
 * Backups in a local (or network-mounted) directory: `backup.type: file`. Objects are written
 * under a temporary name, fsynced and renamed, so a crash leaves each whole or absent.
 */
export class FileTarget implements BackupTarget {
  readonly url: string;

  constructor(readonly dir: string) {
    this.url = `file://${dir}`;
  }

  async check(): Promise<void> {
    try {
      await fsp.mkdir(this.dir, { recursive: true });
      await fsp.access(this.dir, fs.constants.W_OK | fs.constants.R_OK);
    } catch (err) {
      throw this.fail("BACKUP_TARGET_UNREACHABLE", `cannot use the directory`, err);
    }
  }

  async databases(): Promise<string[]> {
    const names = await this.readdir(this.dir);
    const out: string[] = [];
    for (const name of names) if ((await this.readdir(path.join(this.dir, name, "ltx"))).length > 0) out.push(name);
    return out.sort();
  }

  async list(db: string): Promise<BackupFile[]> {
    const out: BackupFile[] = [];
    for (const level of await this.readdir(path.join(this.dir, db, "ltx"))) {
      const levelDir = path.join(this.dir, db, "ltx", level);
      for (const name of await this.readdir(levelDir)) {
        const rel = `${db}/ltx/${level}/${name}`;
        const parsed = parseObjectPath(rel);
        if (!parsed) continue;
        const st = await fsp.stat(path.join(levelDir, name)).catch(() => null);
        if (st) out.push({ ...parsed, size: st.size });
      }
    }
    return out;
  }

  async put(ref: ObjectRef, localPath: string): Promise<void> {
    const dest = this.pathOf(ref);
    const tmp = `${dest}.tmp-${process.pid}`;
    try {
      await fsp.mkdir(path.dirname(dest), { recursive: true });
      await fsp.copyFile(localPath, tmp);
      const fh = await fsp.open(tmp, "r");
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, dest);
      const dir = await fsp.open(path.dirname(dest), "r");
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw this.fail("BACKUP_TARGET_UNREACHABLE", `cannot store ${objectPath(ref)}`, err);
    }
  }

  async get(ref: ObjectRef): Promise<Readable> {
    const file = this.pathOf(ref);
    try {
      const fh = await fsp.open(file, "r");
      return fh.createReadStream({ highWaterMark: 1 << 20 });
    } catch (err) {
      throw this.objectError(ref, err);
    }
  }

  async readRange(ref: ObjectRef, start: number, length: number): Promise<Uint8Array> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(this.pathOf(ref), "r");
    } catch (err) {
      throw this.objectError(ref, err);
    }
    try {
      const size = (await fh.stat()).size;
      const from = start < 0 ? Math.max(0, size + start) : start;
      const buf = Buffer.alloc(Math.max(0, Math.min(length, size - from)));
      await fh.read(buf, 0, buf.length, from);
      return buf;
    } finally {
      await fh.close();
    }
  }

  async delete(refs: readonly ObjectRef[]): Promise<void> {
    for (const ref of refs) {
      await fsp.rm(this.pathOf(ref), { force: true }).catch((err) => {
        throw this.fail("BACKUP_TARGET_UNREACHABLE", `cannot delete ${objectPath(ref)}`, err);
      });
    }
  }

  close(): void {}

  private pathOf(ref: ObjectRef): string {
    return path.join(this.dir, objectPath(ref));
  }

  private async readdir(dir: string): Promise<string[]> {
    try {
      return (await fsp.readdir(dir)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw this.fail("BACKUP_TARGET_UNREACHABLE", `cannot list ${dir}`, err);
    }
  }

  private objectError(ref: ObjectRef, err: unknown): BackupError {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return this.fail("BACKUP_MISSING", `object ${objectPath(ref)} is missing`, err);
    return this.fail("BACKUP_TARGET_UNREACHABLE", `cannot read ${objectPath(ref)}`, err);
  }

  private fail(code: "BACKUP_TARGET_UNREACHABLE" | "BACKUP_MISSING", what: string, err: unknown): BackupError {
    return new BackupError(code, `${this.url}: ${what}: ${(err as Error).message}`, { cause: err });
  }
}
