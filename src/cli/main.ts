#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { LitefsError } from "../errors.js";
import { normalizeGoFlags } from "./flags.js";
import { registerEvents } from "./events.js";
import { registerExport } from "./export.js";
import { registerImport } from "./import.js";
import { registerLtx } from "./ltx.js";
import { registerMount } from "./mount.js";
import { registerHandoff } from "./handoff.js";
import { registerPromote } from "./promote.js";
import { registerRestore } from "./restore.js";
import { registerRun } from "./run.js";
import { registerStatus } from "./status.js";
import { registerVersion } from "./version.js";

/** One file per verb; each exports a `register*` function that adds its command. */
const program = new Command("litefs")
  .description("FUSE filesystem that replicates SQLite databases")
  .exitOverride()
  .configureOutput({ outputError: (str, write) => write(str) });

// Verb registrations (one import per verb file) go below this line.
registerLtx(program);
registerMount(program);
registerRun(program);
registerStatus(program);
registerEvents(program);
registerPromote(program);
registerHandoff(program);
registerImport(program);
registerExport(program);
registerRestore(program);
registerVersion(program);

async function main(): Promise<void> {
  try {
    await program.parseAsync(normalizeGoFlags(process.argv.slice(2)), { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    if (err instanceof LitefsError) {
      process.stderr.write(`litefs: ${err.message}\n`);
    } else {
      process.stderr.write(`litefs: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    }
    process.exitCode = 1;
  }
}

await main();
