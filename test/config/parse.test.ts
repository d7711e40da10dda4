import * as os from "node:os";
import { describe, expect, test } from "vitest";
import { ConfigError, parseConfig, type Config } from "../../src/config/index.js";
import { FILE, MINIMAL, parse, problemAt, problems, refusal, yaml } from "./support.js";

const LITEFS_DEFAULTS: Config = {
  exitOnError: true,
  skipSync: false,
  strictVerify: false,
  exec: [],
  data: { dir: "/var/lib/litefs", compress: true, retentionMs: 600_000, retentionMonitorIntervalMs: 60_000 },
  fuse: { dir: "/litefs", allowOther: false, debug: false, busyPollMs: 0.05 },
  http: { addr: ":20202", snapshotTimeoutMs: 0 },
  proxy: {
    addr: undefined,
    target: undefined,
    databases: [],
    advertiseUrl: undefined,
    debug: false,
    passthrough: [],
    alwaysForward: [],
    maxLagMs: 10_000,
    primaryRedirectTimeoutMs: 5_000,
    readTimeoutMs: 0,
    readHeaderTimeoutMs: 10_000,
    writeTimeoutMs: 0,
    idleTimeoutMs: 30_000,
    flyReplay: false,
  },
  lease: {
    type: "static",
    hostname: os.hostname(),
    advertiseUrl: undefined,
    candidate: true,
    promote: false,
    reconnectDelayMs: 1_000,
    demoteDelayMs: 10_000,
    databases: [],
    consul: { url: undefined, key: undefined, ttlMs: 10_000, lockDelayMs: 1_000 },
  },
  backup: {
    type: "",
    url: undefined,
    forcePathStyle: false,
    intervalMs: 1000,
    snapshotIntervalMs: 24 * 3_600_000,
    retentionMs: 168 * 3_600_000,
    levelsMs: [30_000, 300_000, 3_600_000],
    restoreIfEmpty: false,
  },
  replication: { syncReplicas: 0, syncTimeoutMs: 5000, syncStrict: false, syncCandidatesOnly: false },
  log: { format: "text", timestamp: false, debug: false },
  tracing: { enabled: true, path: undefined, maxSize: 64, maxCount: 8, compress: true },
};

describe("defaults", () => {
  test("a file with only lease.type gets LiteFS's defaults for everything else", () => {
    expect(parse(MINIMAL)).toEqual(LITEFS_DEFAULTS);
  });

  test("an empty section or value means its defaults, as `key:` is null in YAML", () => {
    const config = parse(yaml`
      fuse:
      data:
        retention:
        compress:
      exec:
      lease:
        type: static
        consul:
    `);
    expect(config).toEqual(LITEFS_DEFAULTS);
  });

  test("an empty string means unset for optional strings, as in LiteFS", () => {
    const config = parse(yaml`
      proxy:
        target: ""
      lease:
        type: static
        advertise-url: ""
    `);
    expect(config.proxy.target).toBeUndefined();
    expect(config.lease.advertiseUrl).toBeUndefined();
  });

  test("lease.hostname defaults to the machine's hostname, not $HOSTNAME", () => {
    expect(parse(MINIMAL, { HOSTNAME: "from-env" }).lease.hostname).toBe(os.hostname());
    expect(parse(MINIMAL + "  hostname: db-1\n").lease.hostname).toBe("db-1");
  });
});

describe("every key is read", () => {
  test("a file setting every key to a non-default value", () => {
    const config = parse(yaml`
      exit-on-error: false
      skip-sync: true
      strict-verify: true
      exec:
        - cmd: "app migrate"
          if-candidate: true
        - cmd: "app serve"
      data:
        dir: /data/litefs
        compress: false
        retention: 1h
        retention-monitor-interval: 30s
      fuse:
        dir: /mnt/litefs
        allow-other: true
        debug: true
        busy-poll: 200us
      http:
        addr: "127.0.0.1:3000"
        snapshot-timeout: 2m
        token: "s3cret-token"
        tls:
          cert: tls/cert.pem
          key: /etc/tls/key.pem
          ca: tls/ca.pem
      proxy:
        addr: ":8080"
        target: "localhost:8081"
        db: app.db
        debug: true
        passthrough: ["*.png", "/debug/*"]
        always-forward: ["/login"]
        max-lag: 20s
        primary-redirect-timeout: 3s
        read-timeout: 1s
        read-header-timeout: 2s
        write-timeout: 3s
        idle-timeout: 4s
        fly-replay: true
        advertise-url: "http://db-1:8080"
      lease:
        type: consul
        hostname: db-1
        advertise-url: "http://db-1:20202"
        candidate: false
        promote: true
        reconnect-delay: 2s
        demote-delay: 20s
        databases: [app.db, cache.db]
        consul:
          url: "http://consul:8500"
          key: "litefs/app"
          ttl: 15s
          lock-delay: 2s
      backup:
        type: file
        path: backups
        interval: 2s
        snapshot-interval: 1h
        retention: 24h
        levels: [10s, 1m]
        restore-if-empty: true
      replication:
        sync-replicas: 2
        sync-timeout: 1500ms
        sync-strict: true
        sync-candidates-only: true
      log:
        format: json
        timestamp: true
        debug: true
      tracing:
        enabled: false
        path: /var/log/litefs/trace.log
        max-size: 10
        max-count: 2
        compress: false
    `);
    expect(config).toEqual({
      exitOnError: false,
      skipSync: true,
      strictVerify: true,
      exec: [
        { cmd: "app migrate", ifCandidate: true },
        { cmd: "app serve", ifCandidate: false },
      ],
      data: { dir: "/data/litefs", compress: false, retentionMs: 3_600_000, retentionMonitorIntervalMs: 30_000 },
      fuse: { dir: "/mnt/litefs", allowOther: true, debug: true, busyPollMs: 0.2 },
      http: {
        addr: "127.0.0.1:3000",
        snapshotTimeoutMs: 120_000,
        token: "s3cret-token",
        tls: { cert: "/work/tls/cert.pem", key: "/etc/tls/key.pem", ca: "/work/tls/ca.pem" },
      },
      proxy: {
        addr: ":8080",
        target: "localhost:8081",
        databases: ["app.db"],
        advertiseUrl: "http://db-1:8080",
        debug: true,
        passthrough: ["*.png", "/debug/*"],
        alwaysForward: ["/login"],
        maxLagMs: 20_000,
        primaryRedirectTimeoutMs: 3_000,
        readTimeoutMs: 1_000,
        readHeaderTimeoutMs: 2_000,
        writeTimeoutMs: 3_000,
        idleTimeoutMs: 4_000,
        flyReplay: true,
      },
      lease: {
        type: "consul",
        hostname: "db-1",
        advertiseUrl: "http://db-1:20202",
        candidate: false,
        promote: true,
        reconnectDelayMs: 2_000,
        demoteDelayMs: 20_000,
        databases: ["app.db", "cache.db"],
        consul: { url: "http://consul:8500", key: "litefs/app", ttlMs: 15_000, lockDelayMs: 2_000 },
      },
      backup: {
        type: "file",
        url: "file:///work/backups",
        forcePathStyle: false,
        intervalMs: 2000,
        snapshotIntervalMs: 3_600_000,
        retentionMs: 24 * 3_600_000,
        levelsMs: [10_000, 60_000],
        restoreIfEmpty: true,
      },
      replication: { syncReplicas: 2, syncTimeoutMs: 1500, syncStrict: true, syncCandidatesOnly: true },
      log: { format: "json", timestamp: true, debug: true },
      tracing: { enabled: false, path: "/var/log/litefs/trace.log", maxSize: 10, maxCount: 2, compress: false },
    } satisfies Config);
  });
});

describe("exec", () => {
  test("a single string is one command", () => {
    expect(parse(MINIMAL + 'exec: "myapp -addr :8081"\n').exec).toEqual([
      { cmd: "myapp -addr :8081", ifCandidate: false },
    ]);
  });

  test("an empty string is no command", () => {
    expect(parse(MINIMAL + 'exec: ""\n').exec).toEqual([]);
  });

  test("anything else is refused with the shapes it may take", () => {
    const p = problemAt(MINIMAL + "exec: 5\n", "exec");
    expect(p.line).toBe(3);
    expect(p.message).toMatch(/command string or a list of \{cmd, if-candidate\}, got 5/);
  });

  test("each entry needs a cmd, and if-candidate must be a boolean", () => {
    const text = yaml`
      lease:
        type: static
      exec:
        - cmd: ok
        - if-candidate: true
        - cmd: x
          if-candidate: sometimes
        - cmd: ""
    `;
    expect(problems(text)).toEqual([
      { path: "exec[1].cmd", line: 5, column: 5, message: "is required (a string)" },
      { path: "exec[2].if-candidate", line: 7, column: 5, message: 'expected true or false, got "sometimes"' },
      { path: "exec[3].cmd", line: 8, column: 5, message: "must not be empty" },
    ]);
  });

  test("a list of plain strings is refused, as LiteFS refuses it", () => {
    expect(problemAt(MINIMAL + "exec: [a, b]\n", "exec[0]").message).toBe('expected a mapping, got "a"');
  });
});

describe("types", () => {
  test("booleans accept YAML 1.1 spellings, as LiteFS's yaml.v3 does", () => {
    const config = parse(yaml`
      skip-sync: yes
      exit-on-error: off
      fuse:
        allow-other: On
        debug: Y
      data:
        compress: NO
      lease:
        type: static
        candidate: n
        advertise-url: "http://p:20202"
    `);
    expect(config.skipSync).toBe(true);
    expect(config.exitOnError).toBe(false);
    expect(config.fuse.allowOther).toBe(true);
    expect(config.fuse.debug).toBe(true);
    expect(config.data.compress).toBe(false);
    expect(config.lease.candidate).toBe(false);
  });

  test("fuse.busy-poll is a duration of at most 1ms; 0 turns it off", () => {
    expect(parse(MINIMAL + "fuse:\n  busy-poll: 0\n").fuse.busyPollMs).toBe(0);
    expect(problemAt(MINIMAL + "fuse:\n  busy-poll: 1s\n", "fuse.busy-poll").message).toMatch(/at most 1ms/);
    expect(problemAt(MINIMAL + "fuse:\n  busy-poll: fast\n", "fuse.busy-poll").message).toMatch(/duration/);
  });

  test("a boolean key with another value is refused at its line", () => {
    const p = problemAt(MINIMAL + "skip-sync: maybe\n", "skip-sync");
    expect(p).toMatchObject({ line: 3, message: 'expected true or false, got "maybe"' });
  });

  test("a string key given a number is refused with a hint to quote it", () => {
    const p = problemAt(MINIMAL + "  hostname: 12345\n", "lease.hostname");
    expect(p.line).toBe(3);
    expect(p.message).toBe("expected a string, got 12345 (quote the value to make it a string)");
  });

  test("a section that is not a mapping is refused", () => {
    expect(problemAt(MINIMAL + "fuse: /litefs\n", "fuse")).toMatchObject({
      line: 3,
      message: 'expected a mapping, got "/litefs"',
    });
  });

  test("a list key given a string is refused", () => {
    expect(problemAt(MINIMAL + "proxy:\n  passthrough: '*.png'\n", "proxy.passthrough")).toMatchObject({
      line: 4,
      message: 'expected a list, got "*.png"',
    });
  });

  test("whole-number keys refuse fractions and negatives", () => {
    const text = MINIMAL + "tracing:\n  max-size: 1.5\n  max-count: -1\n";
    expect(problems(text)).toEqual([
      expect.objectContaining({ path: "tracing.max-size", line: 4, message: "expected a whole number, got 1.5" }),
      expect.objectContaining({ path: "tracing.max-count", line: 5, message: "must be at least 0, got -1" }),
    ]);
  });

  test("a file that is not a mapping is refused", () => {
    expect(problems("- fuse\n- lease\n")).toEqual([
      { path: "", line: 1, column: 1, message: 'expected a mapping of keys such as "fuse:" and "lease:", got a list' },
    ]);
  });

  test("an empty file is refused only for the missing lease.type", () => {
    expect(problems("")).toEqual([{ path: "lease.type", message: 'is required: "consul" or "static"' }]);
  });
});

describe("unknown keys", () => {
  test("are refused at every level, each at its own line", () => {
    const text = yaml`
      lease:
        type: static
        colour: blue
      fuse:
        dir: /litefs
        mountpoint: /x
      extra: 1
      exec:
        - cmd: a
          when: always
    `;
    expect(problems(text).map((p) => [p.path, p.line, p.message])).toEqual([
      ["lease.colour", 3, "unknown key"],
      ["fuse.mountpoint", 6, "unknown key"],
      ["extra", 7, "unknown key"],
      ["exec[0].when", 10, "unknown key"],
    ]);
  });

  test.each([
    ["fuse", "allow_other", "allow-other"],
    ["lease", "advertiseURL", "advertise-url"],
    ["lease", "AdvertiseUrl", "advertise-url"],
    ["data", "retension", "retention"],
    ["proxy", "passthrogh", "passthrough"],
  ])("%s.%s suggests %s", (section, key, suggestion) => {
    const text = section === "lease" ? `lease:\n  type: static\n  ${key}: x\n` : `${MINIMAL}${section}:\n  ${key}: x\n`;
    expect(problemAt(text, `${section}.${key}`).message).toBe(`unknown key (did you mean "${suggestion}"?)`);
  });
});

describe("durations", () => {
  test.each([
    ["data", "retention"],
    ["data", "retention-monitor-interval"],
    ["http", "snapshot-timeout"],
    ["proxy", "max-lag"],
    ["proxy", "primary-redirect-timeout"],
    ["proxy", "read-timeout"],
    ["proxy", "read-header-timeout"],
    ["proxy", "write-timeout"],
    ["proxy", "idle-timeout"],
    ["lease", "reconnect-delay"],
    ["lease", "demote-delay"],
  ])("a bad %s.%s is refused naming the key and its line", (section, key) => {
    const text = section === "lease" ? `lease:\n  type: static\n  ${key}: 10x\n` : `${MINIMAL}${section}:\n  ${key}: 10x\n`;
    const p = problemAt(text, `${section}.${key}`);
    expect(p.line).toBe(section === "lease" ? 3 : 4);
    expect(p.message).toMatch(/unknown unit "x" .* "10x"/);
  });

  test("a bare number other than 0 is refused: it has no unit", () => {
    const p = problemAt(MINIMAL + "  reconnect-delay: 10\n", "lease.reconnect-delay");
    expect(p.message).toBe('expected a duration such as "10s" or "1m30s", got 10');
  });

  test("a bare 0 is zero", () => {
    expect(parse(MINIMAL + "  reconnect-delay: 0\n").lease.reconnectDelayMs).toBe(0);
  });

  test("negative durations are refused", () => {
    expect(problemAt(MINIMAL + "  reconnect-delay: -1s\n", "lease.reconnect-delay").message).toBe(
      'must be zero or more, got "-1s"',
    );
  });

  test("data.retention-monitor-interval must be above zero", () => {
    expect(problemAt(MINIMAL + "data:\n  retention-monitor-interval: 0s\n", "data.retention-monitor-interval").message).toBe(
      'must be greater than zero, got "0s"',
    );
  });
});

describe("directories", () => {
  test("relative directories resolve against the working directory", () => {
    const config = parse(MINIMAL + "fuse:\n  dir: mnt\ndata:\n  dir: ./state/../data\n");
    expect(config.fuse.dir).toBe("/work/mnt");
    expect(config.data.dir).toBe("/work/data");
  });

  test("fuse.dir and data.dir must differ after resolution", () => {
    const p = problemAt(MINIMAL + "fuse:\n  dir: /work/x/\ndata:\n  dir: x\n", "fuse.dir");
    expect(p).toMatchObject({ line: 4, message: "must differ from data.dir (both are /work/x)" });
  });

  test("data.dir may not be inside fuse.dir", () => {
    const p = problemAt(MINIMAL + "fuse:\n  dir: /mnt\ndata:\n  dir: /mnt/data\n", "data.dir");
    expect(p).toMatchObject({ line: 6, message: "must not be inside fuse.dir (/mnt)" });
  });

  test("fuse.dir may be inside data.dir", () => {
    expect(parse(MINIMAL + "fuse:\n  dir: /var/lib/litefs/mnt\n").fuse.dir).toBe("/var/lib/litefs/mnt");
  });

  test("empty directories are refused as missing", () => {
    const text = MINIMAL + 'fuse:\n  dir: ""\ndata:\n  dir: ""\n';
    expect(problems(text)).toEqual([
      expect.objectContaining({ path: "fuse.dir", line: 4, message: "is required (the mount point)" }),
      expect.objectContaining({ path: "data.dir", line: 6, message: "is required (where LiteFS keeps its data)" }),
    ]);
  });

  test("the directories are compared even when other keys are wrong", () => {
    const text = MINIMAL + "fuse:\n  dir: /same\n  debug: loud\ndata:\n  dir: /same\n";
    expect(problems(text).map((p) => p.path)).toEqual(["fuse.dir", "fuse.debug"]);
  });
});

describe("http", () => {
  test.each([":20202", "0.0.0.0:20202", "localhost:1", "[::1]:20202", "[::]:0", ":65535"])("addr %s is accepted", (addr) => {
    expect(parse(MINIMAL + `http:\n  addr: "${addr}"\n`).http.addr).toBe(addr);
  });

  test.each(["20202", "localhost", ":http", ":65536", "::1:20202", "host:20202:1", ""])("addr %j is refused", (addr) => {
    const p = problemAt(MINIMAL + `http:\n  addr: "${addr}"\n`, "http.addr");
    expect(p.line).toBe(4);
    expect(p.message).toMatch(/must be host:port with a numeric port/);
  });

  test("token is read, and may come from the environment", () => {
    expect(parse(MINIMAL + "http:\n  token: '${TOKEN}'\n", { TOKEN: "abc123" }).http.token).toBe("abc123");
  });

  test("a token that expands to nothing is refused rather than running without one", () => {
    for (const line of ["  token: ${TOKEN}", "  token: '${TOKEN}'", "  token:"]) {
      const p = problemAt(`${MINIMAL}http:\n${line}\n`, "http.token");
      expect(p.line).toBe(4);
      expect(p.message).toMatch(/^is empty; remove the key to run without a token/);
    }
  });

  test("a token YAML reads as a number is refused, since quoting keeps its exact text", () => {
    expect(problemAt(MINIMAL + "http:\n  token: 0123\n", "http.token").message).toBe(
      "expected a string, got 123 (quote the value to make it a string)",
    );
  });

  test("a token with spaces is refused: it goes in an HTTP header", () => {
    expect(problemAt(MINIMAL + "http:\n  token: 'a b'\n", "http.token").message).toBe(
      "must be printable ASCII without spaces",
    );
  });

  test("tls needs both cert and key", () => {
    expect(problemAt(MINIMAL + "http:\n  tls:\n    cert: c.pem\n", "http.tls.key")).toMatchObject({
      line: 4,
      message: "is required when http.tls.cert is set (give both or neither)",
    });
    expect(problemAt(MINIMAL + "http:\n  tls:\n    key: k.pem\n", "http.tls.cert").message).toBe(
      "is required when http.tls.key is set (give both or neither)",
    );
  });

  test("the tls check runs even when another http key is wrong", () => {
    const text = MINIMAL + "http:\n  addr: 20202\n  tls:\n    cert: c.pem\n";
    expect(problems(text).map((p) => p.path)).toEqual(["http.addr", "http.tls.key"]);
  });

  test("tls.ca needs cert and key, and names them", () => {
    expect(problemAt(MINIMAL + "http:\n  tls:\n    ca: ca.pem\n", "http.tls.ca")).toMatchObject({
      line: 5,
      message: "needs http.tls.cert and http.tls.key: with a CA the node serves TLS and presents its certificate to peers",
    });
    // Half a pair is reported once, at the missing half.
    expect(problems(MINIMAL + "http:\n  tls:\n    cert: c.pem\n    ca: ca.pem\n").map((p) => p.path)).toEqual(["http.tls.key"]);
  });

  test("tls without ca is TLS without client certificates; ca: '' is no ca", () => {
    expect(parse(MINIMAL + "http:\n  tls:\n    cert: c.pem\n    key: k.pem\n").http.tls).toEqual({ cert: "/work/c.pem", key: "/work/k.pem" });
    expect(parse(MINIMAL + "http:\n  tls:\n    cert: c.pem\n    key: k.pem\n    ca: ''\n").http.tls).toEqual({ cert: "/work/c.pem", key: "/work/k.pem" });
  });

  test("an unknown key under tls is refused", () => {
    expect(problemAt(MINIMAL + "http:\n  tls:\n    cert: c.pem\n    key: k.pem\n    client-ca: ca.pem\n", "http.tls.client-ca").message).toBe("unknown key");
  });

  test("tls with neither file is no tls", () => {
    expect(parse(MINIMAL + "http:\n  tls:\n").http.tls).toBeUndefined();
    expect(parse(MINIMAL + "http:\n  tls:\n    cert: ''\n    key: ''\n").http.tls).toBeUndefined();
  });
});

describe("lease", () => {
  test("type is required", () => {
    expect(problemAt("lease:\n  candidate: true\n", "lease.type")).toMatchObject({
      line: 1,
      message: 'is required: "consul" or "static"',
    });
  });

  test("type must be consul or static", () => {
    expect(problemAt("lease:\n  type: etcd\n", "lease.type")).toMatchObject({
      line: 2,
      message: 'must be "consul" or "static", got "etcd"',
    });
  });

  test("advertise-url must be an http(s) URL", () => {
    const p = problemAt(MINIMAL + "  advertise-url: primary:20202\n", "lease.advertise-url");
    expect(p).toMatchObject({ line: 3, message: 'must be an http:// or https:// URL, got "primary:20202"' });
  });

  test("a static replica needs advertise-url to find the primary", () => {
    const p = problemAt(MINIMAL + "  candidate: false\n", "lease.advertise-url");
    expect(p.message).toMatch(/is required on a static replica/);
    expect(parse(MINIMAL + "  candidate: false\n  advertise-url: http://p:20202\n").lease.candidate).toBe(false);
  });

  test("databases may be filtered only on a non-candidate", () => {
    const p = problemAt(MINIMAL + "  databases: [a.db]\n", "lease.databases");
    expect(p).toMatchObject({ line: 3, message: "cannot filter databases on a candidate node (set lease.candidate: false)" });
    const replica = parse(MINIMAL + "  candidate: false\n  advertise-url: http://p:20202\n  databases: [a.db]\n");
    expect(replica.lease.databases).toEqual(["a.db"]);
  });

  test("database names cannot hold a slash", () => {
    const text = MINIMAL + "  candidate: false\n  advertise-url: http://p:20202\n  databases: [ok.db, a/b.db]\n";
    expect(problemAt(text, "lease.databases[1]").message).toBe('must be a database name without "/", got "a/b.db"');
  });
});

describe("consul lease", () => {
  const consul = (body: string) => `lease:\n  type: consul\n  consul:\n${body}`;

  test("needs url and key", () => {
    expect(problems("lease:\n  type: consul\n")).toEqual([
      expect.objectContaining({ path: "lease.consul.url", line: 1, message: 'is required when lease.type is "consul"' }),
      expect.objectContaining({ path: "lease.consul.key", line: 1, message: expect.stringMatching(/^is required when/) }),
    ]);
  });

  test("url must be an http(s) URL", () => {
    const p = problemAt(consul("    url: localhost:8500\n    key: k\n"), "lease.consul.url");
    expect(p).toMatchObject({ line: 4, message: 'must be an http:// or https:// URL, got "localhost:8500"' });
  });

  test("ttl below Consul's 10s minimum is refused at its line", () => {
    const p = problemAt(consul("    url: http://c:8500\n    key: k\n    ttl: 5s\n"), "lease.consul.ttl");
    expect(p).toMatchObject({ line: 6, message: "must be between 10s and 24h (Consul's limits), got 5s" });
  });

  test("ttl above Consul's 24h maximum is refused", () => {
    const p = problemAt(consul("    url: http://c:8500\n    key: k\n    ttl: 25h\n"), "lease.consul.ttl");
    expect(p.message).toBe("must be between 10s and 24h (Consul's limits), got 25h0m0s");
  });

  test("a zero ttl or lock-delay means the default, as in LiteFS", () => {
    const config = parse(consul("    url: http://c:8500\n    key: k\n    ttl: 0\n    lock-delay: 0s\n"));
    expect(config.lease.consul).toEqual({ url: "http://c:8500", key: "k", ttlMs: 10_000, lockDelayMs: 1_000 });
  });

  test("the consul checks run even when another lease key is wrong", () => {
    const text = "lease:\n  type: consul\n  promote: maybe\n  consul:\n    key: k\n";
    expect(problems(text).map((p) => p.path)).toEqual(["lease.promote", "lease.consul.url"]);
  });

  test("consul settings are not checked on a static lease", () => {
    expect(parse(MINIMAL + "  consul:\n    ttl: 5s\n").lease.consul.ttlMs).toBe(5_000);
  });
});

describe("proxy", () => {
  test("a target needs addr and db", () => {
    const text = MINIMAL + "proxy:\n  target: localhost:8081\n";
    expect(problems(text).map((p) => [p.path, p.line, p.message])).toEqual([
      ["proxy.addr", 3, "is required when proxy.target is set"],
      ["proxy.db", 3, "is required when proxy.target is set (the database, or list of databases, whose TXID the proxy tracks)"],
    ]);
  });

  test("target and addr must be host:port", () => {
    const text = MINIMAL + "proxy:\n  addr: '8080'\n  target: http://localhost:8081\n  db: a.db\n";
    expect(problems(text).map((p) => [p.path, p.line])).toEqual([
      ["proxy.addr", 4],
      ["proxy.target", 5],
    ]);
  });

  test("db takes one database (LiteFS) or a list of them", () => {
    const one = parse(MINIMAL + "proxy:\n  addr: ':8080'\n  target: localhost:8081\n  db: a.db\n");
    expect(one.proxy.databases).toEqual(["a.db"]);
    const two = parse(MINIMAL + "proxy:\n  addr: ':8080'\n  target: localhost:8081\n  db: [a.db, b.db]\n");
    expect(two.proxy.databases).toEqual(["a.db", "b.db"]);
  });

  test("a database name with a slash is refused", () => {
    const text = MINIMAL + "proxy:\n  addr: ':8080'\n  target: localhost:8081\n  db: [dir/a.db]\n";
    expect(problems(text).map((p) => [p.path, p.message])).toEqual([["proxy.db[0]", 'must be a database name without "/", got "dir/a.db"']]);
  });

  test("addr without a target is accepted: the proxy is off, as in LiteFS", () => {
    expect(parse(MINIMAL + "proxy:\n  addr: ':8080'\n").proxy).toMatchObject({ addr: ":8080", target: undefined });
  });
});

describe("backup, log and tracing", () => {
  test("backup.type must be s3 or file", () => {
    expect(problemAt(MINIMAL + "backup:\n  type: gcs\n", "backup.type").message).toBe(
      'must be "" or "s3" or "file" or "litefs-cloud", got "gcs"',
    );
  });

  test("litefs-cloud is refused: the service was shut down in 2024", () => {
    expect(problemAt(MINIMAL + "backup:\n  type: litefs-cloud\n  auth-token: tok\n", "backup.type").message).toMatch(
      /LiteFS Cloud was shut down in 2024.*type: s3/,
    );
  });

  test("a file backup needs a url or a path", () => {
    expect(problemAt(MINIMAL + "backup:\n  type: file\n", "backup.url")).toMatchObject({
      message: 'is required when backup.type is "file" (file:///path/to/backups, or backup.path)',
    });
  });

  test("an s3 backup needs an s3:// url, both keys or neither, and growing levels", () => {
    expect(problemAt(MINIMAL + "backup:\n  type: s3\n", "backup.url").message).toMatch(/is required/);
    expect(problemAt(MINIMAL + "backup:\n  type: s3\n  url: http://x\n", "backup.url").message).toBe('must be s3://bucket[/prefix], got "http://x"');
    expect(problemAt(MINIMAL + "backup:\n  type: s3\n  url: s3://b\n  access-key-id: k\n", "backup.secret-access-key").message).toMatch(/give both/);
    expect(problemAt(MINIMAL + "backup:\n  type: s3\n  url: s3://b\n  levels: [5m, 30s]\n", "backup.levels[1]").message).toBe(
      "must be longer than the level before it",
    );
    expect(problemAt(MINIMAL + "backup:\n  type: s3\n  url: s3://b\n  interval: 0s\n", "backup.interval").message).toMatch(/greater than zero/);
  });

  test("an s3 backup with an endpoint uses path-style URLs unless told otherwise", () => {
    const b = parse(MINIMAL + "backup:\n  type: s3\n  url: s3://bucket/p\n  endpoint: http://127.0.0.1:9000\n").backup;
    expect(b).toMatchObject({ type: "s3", url: "s3://bucket/p", endpoint: "http://127.0.0.1:9000", forcePathStyle: true });
  });

  test("log.format must be text or json", () => {
    expect(problemAt(MINIMAL + "log:\n  format: xml\n", "log.format")).toMatchObject({
      line: 4,
      message: 'must be "text" or "json", got "xml"',
    });
  });
});

describe("reporting", () => {
  const bad = yaml`
    fuse:
      dir: /litefs
    lease:
      type: consul
      consul:
        url: http://consul:8500
        key: litefs/app
        ttl: 5s
    http:
      addr: nowhere
    bogus: true
  `;

  test("every problem is reported, in file order, with the key path and line", () => {
    expect(problems(bad).map((p) => [p.line, p.path])).toEqual([
      [8, "lease.consul.ttl"],
      [10, "http.addr"],
      [11, "bogus"],
    ]);
  });

  test("the error says where, one problem per line", () => {
    const err = refusal(bad);
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.file).toBe(FILE);
    expect(err.message.split("\n")).toEqual([
      "invalid config /etc/litefs.yml:",
      "  /etc/litefs.yml:8: lease.consul.ttl: must be between 10s and 24h (Consul's limits), got 5s",
      '  /etc/litefs.yml:10: http.addr: must be host:port with a numeric port, such as ":20202" or "127.0.0.1:20202", got "nowhere"',
      "  /etc/litefs.yml:11: bogus: unknown key",
    ]);
  });

  test("Windows line endings do not move the lines", () => {
    const p = problemAt(bad.replace(/\n/g, "\r\n"), "http.addr");
    expect(p.line).toBe(10);
  });
});

describe("YAML syntax errors", () => {
  test("are refused with line and column", () => {
    const err = refusal("lease:\n  type: static\nproxy:\n  passthrough: [a, b\nlog: {}\n");
    expect(err.code).toBe("CONFIG_SYNTAX");
    expect(err.problems[0]).toMatchObject({ path: "", line: 5, column: 1 });
    expect(err.message).toMatch(/^invalid YAML in \/etc\/litefs.yml:\n {2}\/etc\/litefs.yml:5:1: /);
  });

  test("a duplicate key is a syntax error, as in yaml.v3", () => {
    const err = refusal("lease:\n  type: static\n  type: consul\n");
    expect(err.code).toBe("CONFIG_SYNTAX");
    expect(err.problems).toEqual([{ path: "", line: 3, column: 3, message: "Map keys must be unique" }]);
  });

  test("a tab in indentation is a syntax error", () => {
    const err = refusal("lease:\n\ttype: static\n");
    expect(err.code).toBe("CONFIG_SYNTAX");
    expect(err.problems[0]!.line).toBe(2);
  });

  test("a second document is refused", () => {
    expect(refusal(MINIMAL + "---\nlease:\n  type: consul\n").code).toBe("CONFIG_SYNTAX");
  });

  test("anchors and merge keys work, as in yaml.v3", () => {
    const config = parse(yaml`
      lease:
        type: static
      exec:
        - &migrate
          cmd: migrate
          if-candidate: true
        - <<: *migrate
          cmd: seed
    `);
    expect(config.exec).toEqual([
      { cmd: "migrate", ifCandidate: true },
      { cmd: "seed", ifCandidate: true },
    ]);
  });
});

describe("environment expansion", () => {
  test("happens before parsing, so variables can fill in any value", () => {
    const config = parse(
      yaml`
        fuse:
          dir: $MNT
        lease:
          type: $LEASE_TYPE
          candidate: \${FLY_REGION == "ord"}
          advertise-url: "http://\${HOSTNAME}:20202"
      `,
      { MNT: "/mnt/x", LEASE_TYPE: "static", FLY_REGION: "ord", HOSTNAME: "db-7" },
    );
    expect(config.fuse.dir).toBe("/mnt/x");
    expect(config.lease.candidate).toBe(true);
    expect(config.lease.advertiseUrl).toBe("http://db-7:20202");
  });

  test("an expression can make a node a replica", () => {
    const text = MINIMAL + "  candidate: ${FLY_REGION == 'ord'}\n  advertise-url: http://p:20202\n";
    expect(parse(text, { FLY_REGION: "syd" }).lease.candidate).toBe(false);
  });

  test("HOSTNAME defaults to the machine's hostname, as litefs mount sets it", () => {
    const text = MINIMAL + "  advertise-url: http://${HOSTNAME}:20202\n";
    const config = parseConfig(text, { path: FILE, env: {}, cwd: "/" });
    expect(config.lease.advertiseUrl).toBe(`http://${os.hostname()}:20202`);
  });

  test("noExpandEnv leaves the text alone", () => {
    const text = MINIMAL + "proxy:\n  passthrough: ['$HOME/*']\n";
    const config = parseConfig(text, { path: FILE, env: { HOME: "/root" }, noExpandEnv: true, cwd: "/" });
    expect(config.proxy.passthrough).toEqual(["$HOME/*"]);
    expect(parse(text, { HOME: "/root" }).proxy.passthrough).toEqual(["/root/*"]);
  });

  test("line numbers are those of the file even when a value spans lines", () => {
    const text = 'lease:\n  type: static\n  hostname: "${NAME}"\nbogus: 1\n';
    const p = problemAt(text, "bogus", { NAME: "a\n    b\n    c" });
    expect(p.line).toBe(4);
  });

  test("a syntax error inside an expanded value points at the variable", () => {
    const err = refusal("lease:\n  type: static\n  hostname: ${NAME}\n", { NAME: "@oops" });
    expect(err.code).toBe("CONFIG_SYNTAX");
    expect(err.problems[0]!.line).toBe(3);
  });

  test("errors that all fall inside one expanded value are reported once", () => {
    const err = refusal("x: ${MULTI}\nlease:\n  type: static\n", { MULTI: "a\nb\nc" });
    expect(err.code).toBe("CONFIG_SYNTAX");
    expect(err.problems).toEqual([
      { path: "", line: 1, column: 4, message: "Implicit map keys need to be followed by map values" },
    ]);
  });
});

describe("ConfigError", () => {
  test("is a LitefsError with a stable code", async () => {
    const { LitefsError } = await import("../../src/errors.js");
    const err = refusal("lease:\n  type: nope\n");
    expect(err).toBeInstanceOf(LitefsError);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.name).toBe("ConfigError");
    expect(err.code).toBe("CONFIG_INVALID");
  });
});

describe("replication (synchronous replication)", () => {
  test("bad values are refused with the key named", () => {
    expect(problemAt("replication:\n  sync-replicas: -1\n", "replication.sync-replicas").message).toMatch(/at least 0/);
    expect(problemAt("replication:\n  sync-timeout: soon\n", "replication.sync-timeout").message).toMatch(/duration/);
    expect(problemAt("replication:\n  sync-strict: maybe\n", "replication.sync-strict")).toBeDefined();
    expect(problemAt("replication:\n  sync-replica: 1\n", "replication.sync-replica").message).toMatch(/sync-replicas/);
  });
});
