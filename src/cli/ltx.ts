/**
 * `litefs ltx verify|dump|checksum`: what an operator reaches for when a replica reports a
 * checksum mismatch. Each subcommand is also exported as a function writing lines to `out`,
 * so tests can run it without a process.
 */
import { open } from "node:fs/promises";
import type { Command } from "commander";
import { LitefsError } from "../errors.js";
import {
  CHECKSUM_FLAG,
  type LtxHeader,
  databaseChecksumFile,
  decodeLtxFile,
  formatChecksum,
  formatTxid,
  isCompressed,
  isSnapshot,
  verifyLtx,
} from "../ltx/index.js";
import { isDatabaseHeader, pageSizeFromHeader } from "../sqlite/index.js";
import { CliError } from "./errors.js";

export type LineWriter = (line: string) => void;

const stdoutLines: LineWriter = (line) => {
  process.stdout.write(`${line}\n`);
};


/** Errors from the file system (missing file, permission) become messages, not stack traces. */
async function withFileErrors<T>(file: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof LitefsError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (typeof e?.code === "string" && typeof e.syscall === "string") {
      throw new CliError("CLI_FILE", `${file}: ${e.message}`, { cause: err });
    }
    throw err;
  }
}

/** Verifies each file in turn; stops with an error at the first bad one. */
export async function ltxVerify(files: string[], out: LineWriter = stdoutLines): Promise<void> {
  for (const file of files) {
    const s = await withFileErrors(file, () => verifyLtx(file));
    out(
      `${file}: ok (TXID ${formatTxid(s.header.minTxid)}-${formatTxid(s.header.maxTxid)}, ` +
        `${s.pageCount} pages, post-apply ${formatChecksum(s.trailer.postApplyChecksum)})`,
    );
  }
}

function headerLines(h: LtxHeader): string[] {
  const kind = isSnapshot(h) ? "snapshot" : h.commit === 0 ? "deletion" : "incremental";
  return [
    "header:",
    `  kind           ${kind}`,
    `  flags          0x${h.flags.toString(16).padStart(8, "0")}${isCompressed(h) ? " (lz4)" : ""}`,
    `  page size      ${h.pageSize}`,
    `  commit         ${h.commit}`,
    `  min TXID       ${formatTxid(h.minTxid)}`,
    `  max TXID       ${formatTxid(h.maxTxid)}`,
    `  timestamp      ${h.timestamp} (${formatTimestamp(h.timestamp)})`,
    `  pre-apply      ${formatChecksum(h.preApplyChecksum)}`,
    `  WAL offset     ${h.walOffset}`,
    `  WAL size       ${h.walSize}`,
    `  WAL salts      ${hex8(h.walSalt1)} ${hex8(h.walSalt2)}`,
    `  node ID        ${formatChecksum(h.nodeId)}`,
  ];
}

function formatTimestamp(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? "out of range" : d.toISOString();
}

function hex8(v: number): string {
  return v.toString(16).padStart(8, "0");
}

/**
 * Prints the header, every page number with its page checksum, and the trailer. Output is
 * written as the file is read, so a damaged file still shows everything before the damage
 * before the error ends the command.
 */
export async function ltxDump(file: string, out: LineWriter = stdoutLines): Promise<void> {
  await withFileErrors(file, async () => {
    let width = 1;
    for await (const ev of decodeLtxFile(file)) {
      if (ev.type === "header") {
        width = String(ev.header.commit).length;
        out(`file: ${file}`);
        for (const line of headerLines(ev.header)) out(line);
        out("pages:");
      } else if (ev.type === "page") {
        out(`  page ${String(ev.pgno).padStart(width)}  checksum ${formatChecksum(ev.checksum)}`);
      } else {
        out("trailer:");
        out(`  post-apply     ${formatChecksum(ev.trailer.postApplyChecksum)}`);
        out(`  file checksum  ${formatChecksum(ev.trailer.fileChecksum)} (verified)`);
      }
    }
  });
}

/** Page size of a plain SQLite database file, from its header (1 there means 65536). */
async function sqlitePageSize(file: string): Promise<number | null> {
  const fh = await open(file, "r");
  try {
    const head = Buffer.alloc(100);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (bytesRead === 0) return null; // an empty file is an empty database
    if (bytesRead < head.length || !isDatabaseHeader(head)) {
      throw new CliError("CLI_NOT_SQLITE", `${file}: not a SQLite database (no "SQLite format 3" header)`);
    }
    try {
      return pageSizeFromHeader(head);
    } catch (err) {
      throw new CliError("CLI_NOT_SQLITE", `${file}: ${(err as Error).message} in the SQLite header`);
    }
  } finally {
    await fh.close();
  }
}

/** Prints the rolling checksum of a database file: pages = file size / page size. */
export async function ltxChecksum(file: string, out: LineWriter = stdoutLines): Promise<void> {
  await withFileErrors(file, async () => {
    const pageSize = await sqlitePageSize(file);
    const sum = pageSize === null ? CHECKSUM_FLAG : await databaseChecksumFile(file, pageSize);
    out(formatChecksum(sum));
  });
}

export function registerLtx(program: Command): void {
  const ltx = program.command("ltx").description("inspect and check LTX transaction files and database checksums");

  ltx
    .command("verify")
    .description("check LTX files end to end (layout, page rules, checksums); exits non-zero at the first bad file")
    .argument("<file...>", "LTX files")
    .action(async (files: string[]) => {
      await ltxVerify(files);
    });

  ltx
    .command("dump")
    .description("print an LTX file's header, page numbers and trailer, verifying it as it goes")
    .argument("<file>", "LTX file")
    .action(async (file: string) => {
      await ltxDump(file);
    });

  ltx
    .command("checksum")
    .description("print the rolling checksum of a SQLite database file, as LTX positions record it")
    .argument("<dbfile>", "SQLite database file")
    .action(async (file: string) => {
      await ltxChecksum(file);
    });
}
