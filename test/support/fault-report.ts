import * as fsp from "node:fs/promises";

/** One line of the fault suite's report (docs/reliability.md is written from a real run). */
export interface ScenarioReport {
  scenario: string;
  iterations: number;
  faults: number;
  acked: number;
  /** Acknowledged writes missing afterwards: 0 unless the scenario states an asynchronous window. */
  lost: number;
  /** Slowest recovery of an iteration (fault until the cluster converged again), ms. */
  recoverMaxMs: number;
  recoverMedianMs: number;
  note?: string;
}

/** Collects recovery times and counts for one scenario, then prints and appends its line. */
export class ScenarioTally {
  iterations = 0;
  faults = 0;
  acked = 0;
  lost = 0;
  private readonly recoveries: number[] = [];

  constructor(readonly scenario: string) {}

  recovered(ms: number): void {
    this.recoveries.push(ms);
  }

  /** Prints one line and appends it to LITEFS_FAULT_REPORT (JSON lines), if set. */
  async report(note?: string): Promise<ScenarioReport> {
    const sorted = [...this.recoveries].sort((a, b) => a - b);
    const row: ScenarioReport = {
      scenario: this.scenario,
      iterations: this.iterations,
      faults: this.faults,
      acked: this.acked,
      lost: this.lost,
      recoverMaxMs: Math.round(sorted.at(-1) ?? 0),
      recoverMedianMs: Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0),
      ...(note && { note }),
    };
    console.log(`[fault report] ${JSON.stringify(row)}`);
    const file = process.env.LITEFS_FAULT_REPORT;
    if (file) await fsp.appendFile(file, JSON.stringify(row) + "\n");
    return row;
  }
}
