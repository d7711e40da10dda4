import { z } from "zod";
import { Position } from "../ltx/index.js";
import { CLUSTER_ID_PATTERN } from "../store/cluster-id.js";
import { StreamError } from "./frames.js";

/** Largest POST /stream body accepted: positions of thousands of databases fit easily. */
export const MAX_STREAM_REQUEST_BYTES = 1 << 20;

/** Longest replica API URL accepted (a URL, not a document). */
export const MAX_API_URL_LENGTH = 2048;

const positionText = z.string().regex(/^[0-9a-f]{16}\/[0-9a-f]{16}$/, "position must be %016x/%016x");

/** What a replica sends to open a stream: who it is and where each of its databases stands. */
const streamRequestSchema = z
  .object({
    nodeId: z.string().regex(/^[0-9a-f]{16}$/, "nodeId must be 16 hex digits"),
    hostname: z.string().max(255),
    clusterId: z.union([z.literal(""), z.string().regex(CLUSTER_ID_PATTERN, "clusterId must be LFSC and 16 hex digits")]),
    /** lease.candidate of the replica: may the lease be handed to it. */
    candidate: z.boolean().optional(),
    /** The replica's own cluster API, listed in the primary's /info for `litefs status`. */
    apiUrl: z.string().max(MAX_API_URL_LENGTH).refine(isHttpUrl, "apiUrl must be an http:// or https:// URL").optional(),
    /** Databases this replica wants (lease.databases); null or absent = all. */
    databases: z.array(z.string().min(1).max(255)).max(100_000).nullish(),
    positions: z.record(z.string().min(1).max(255), positionText),
    /** Recent positions per database (oldest first), to find where a diverged replica left off. */
    history: z.record(z.string().min(1).max(255), z.array(positionText).max(1000)).optional(),
  })
  .strict();

export interface StreamRequest {
  nodeId: string;
  candidate?: boolean;
  hostname: string;
  apiUrl?: string;
  clusterId: string;
  databases: string[] | null;
  positions: Map<string, Position>;
  history: Map<string, Position[]>;
}

/** Parses and validates a request body; the error message says what is wrong. */
export function parseStreamRequest(body: string): StreamRequest {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (err) {
    throw new StreamError("STREAM_BAD_REQUEST", `request body is not JSON: ${(err as Error).message}`);
  }
  const parsed = streamRequestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new StreamError("STREAM_BAD_REQUEST", `invalid stream request: ${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  const positions = new Map<string, Position>();
  for (const [name, text] of Object.entries(parsed.data.positions)) positions.set(name, Position.parse(text));
  const history = new Map<string, Position[]>();
  for (const [name, list] of Object.entries(parsed.data.history ?? {})) history.set(name, list.map((t) => Position.parse(t)));
  return { ...parsed.data, databases: parsed.data.databases ?? null, positions, history };
}

function isHttpUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === "http:" || protocol === "https:";
  } catch {
    return false;
  }
}
