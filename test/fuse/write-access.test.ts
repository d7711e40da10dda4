import { expect, test } from "vitest";
import { accessFor } from "../../src/fuse/write-access.js";

const agent = () => true;
const app = () => false;

test("while a database is imported only the mount agent writes it; others open ordinary handles for later", () => {
  expect(accessFor("importing", "database", true, agent)).toBe("apply");
  expect(accessFor("importing", "wal", true, agent)).toBe("apply");
  expect(accessFor("importing", "database", true, app)).toBe("captured");
  expect(accessFor("importing", "shm", true, app)).toBe("index");
  expect(accessFor("importing", "database", false, app)).toBe("read");
});

test("on the primary every writer is captured, the mount agent too; on a replica only the agent writes", () => {
  expect(accessFor("primary", "database", true, agent)).toBe("captured");
  expect(accessFor("replica", "database", true, agent)).toBe("apply");
  expect(accessFor("replica", "database", true, app)).toBeNull();
  expect(accessFor("replica", "wal", true, app)).toBe("read");
});
