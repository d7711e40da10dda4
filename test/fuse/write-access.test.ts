import { expect, test } from "vitest";
import { accessFor } from "../../src/fuse/write-access.js";

const agent = () => true;
const app = () => false;

test("while the primary's mount agent holds the write lock (an import, a HALT) only it writes; others open ordinary handles for later", () => {
  expect(accessFor("held", "database", true, agent)).toBe("apply");
  expect(accessFor("held", "wal", true, agent)).toBe("apply");
  expect(accessFor("held", "database", true, app)).toBe("captured");
  expect(accessFor("held", "shm", true, app)).toBe("index");
  expect(accessFor("held", "database", false, app)).toBe("read");
});

test("on the primary every writer is captured, the mount agent too; on a replica only the agent writes", () => {
  expect(accessFor("primary", "database", true, agent)).toBe("captured");
  expect(accessFor("replica", "database", true, agent)).toBe("apply");
  expect(accessFor("replica", "database", true, app)).toBeNull();
  expect(accessFor("replica", "wal", true, app)).toBe("read");
});

test("a replica holding the HALT lock captures its writers' writes; the mount agent still applies", () => {
  expect(accessFor("halted", "database", true, app)).toBe("captured");
  expect(accessFor("halted", "journal", true, app)).toBe("captured");
  expect(accessFor("halted", "database", true, agent)).toBe("apply");
  expect(accessFor("halted", "shm", true, app)).toBe("index");
});
