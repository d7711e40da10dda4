import { LitefsError } from "../errors.js";

/**
 * The replication stream a primary sends in answer to POST /stream: a sequence of frames, each
 * a type byte and a type-specific body (all integers big-endian). An LTX frame carries the file's
 * size up front and then the file's bytes, so a file streams through without being buffered.
 *
 *   LTX       1  u16 name length, name (UTF-8), u64 size, <size bytes of the LTX file>
 *   READY     2  (empty) the replica has been sent everything up to now
 *   HEARTBEAT 3  u64 primary clock (ms since the epoch)
 *   HANDOFF   4  u16 length, lease ID (UTF-8): take over the primary's lease
 *   END       5  u16 length, reason (UTF-8): the primary is closing the stream
 */
export const FrameType = { Ltx: 1, Ready: 2, Heartbeat: 3, Handoff: 4, End: 5 } as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

/** Largest LTX file a frame may announce (16 TiB): anything above is a broken stream. */
const MAX_LTX_FRAME_SIZE = 2 ** 44;
const MAX_STRING = 4096;

export type Frame =
  | { type: typeof FrameType.Ltx; name: string; size: number }
  | { type: typeof FrameType.Ready }
  | { type: typeof FrameType.Heartbeat; timestamp: number }
  | { type: typeof FrameType.Handoff; leaseId: string }
  | { type: typeof FrameType.End; reason: string };

export type StreamErrorCode =
  /** The stream ended in the middle of a frame. */
  | "STREAM_TRUNCATED"
  /** A frame that cannot be decoded. */
  | "STREAM_BAD_FRAME"
  /** The other side closed the stream (or the primary is stepping down). */
  | "STREAM_CLOSED"
  /** The primary answered the stream request with an error status. */
  | "STREAM_REFUSED"
  /** The replica and the primary belong to different clusters. */
  | "STREAM_CLUSTER_MISMATCH"
  /** The replica's stream request is malformed. */
  | "STREAM_BAD_REQUEST"
  /** An LTX file could not be sent as stored (it changed or is damaged). */
  | "STREAM_BAD_FILE";

export class StreamError extends LitefsError {
  declare readonly code: StreamErrorCode;

  constructor(code: StreamErrorCode, message: string) {
    super(code, message);
  }
}

// ---- encoding (primary side) -------------------------------------------------------------------

function stringFrame(type: number, s: string): Buffer {
  const bytes = Buffer.from(s, "utf8");
  const out = Buffer.alloc(3 + bytes.length);
  out[0] = type;
  out.writeUInt16BE(bytes.length, 1);
  bytes.copy(out, 3);
  return out;
}

/** The frame header of an LTX frame; the file's bytes follow it. */
export function encodeLtxFrameHeader(name: string, size: number): Buffer {
  const nameBytes = Buffer.from(name, "utf8");
  const out = Buffer.alloc(1 + 2 + nameBytes.length + 8);
  out[0] = FrameType.Ltx;
  out.writeUInt16BE(nameBytes.length, 1);
  nameBytes.copy(out, 3);
  out.writeBigUInt64BE(BigInt(size), 3 + nameBytes.length);
  return out;
}

export function encodeReadyFrame(): Buffer {
  return Buffer.from([FrameType.Ready]);
}

export function encodeHeartbeatFrame(timestamp: number): Buffer {
  const out = Buffer.alloc(9);
  out[0] = FrameType.Heartbeat;
  out.writeBigUInt64BE(BigInt(timestamp), 1);
  return out;
}

export function encodeHandoffFrame(leaseId: string): Buffer {
  return stringFrame(FrameType.Handoff, leaseId);
}

export function encodeEndFrame(reason: string): Buffer {
  return stringFrame(FrameType.End, reason);
}

// ---- decoding (replica side) -------------------------------------------------------------------

/**
 * Reads frames from a byte stream with arbitrary chunk boundaries. After an LTX frame, the
 * caller must consume exactly `size` bytes with `readBody` before asking for the next frame.
 */
export class FrameReader {
  private readonly iter: AsyncIterator<Uint8Array>;
  private buf: Buffer = Buffer.alloc(0);
  private eof = false;
  /** A read from the source started by `hasBuffered` that had not completed yet. */
  private pending: Promise<IteratorResult<Uint8Array>> | null = null;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.iter = source[Symbol.asyncIterator]();
  }

  /** The next frame, or null when the stream ended cleanly between frames. */
  async next(): Promise<Frame | null> {
    if (!(await this.fill(1))) return null;
    const type = this.buf[0];
    this.consume(1);
    switch (type) {
      case FrameType.Ltx: {
        const name = await this.readString("LTX frame name");
        const size = Number((await this.readExact(8, "LTX frame size")).readBigUInt64BE(0));
        if (size > MAX_LTX_FRAME_SIZE) throw new StreamError("STREAM_BAD_FRAME", `LTX frame for ${JSON.stringify(name)} announces ${size} bytes`);
        return { type, name, size };
      }
      case FrameType.Ready:
        return { type };
      case FrameType.Heartbeat:
        return { type, timestamp: Number((await this.readExact(8, "heartbeat")).readBigUInt64BE(0)) };
      case FrameType.Handoff:
        return { type, leaseId: await this.readString("handoff lease ID") };
      case FrameType.End:
        return { type, reason: await this.readString("end reason") };
      default:
        throw new StreamError("STREAM_BAD_FRAME", `unknown frame type ${type}`);
    }
  }

  /** Yields exactly `size` bytes (the body of an LTX frame) in the chunks they arrive in. */
  async *readBody(size: number): AsyncGenerator<Buffer> {
    let left = size;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.fill(1))) {
        throw new StreamError("STREAM_TRUNCATED", `stream ended ${left} bytes before the end of an LTX file`);
      }
      const n = Math.min(left, this.buf.length);
      const chunk = this.buf.subarray(0, n);
      this.consume(n);
      left -= n;
      yield chunk;
    }
  }

  /**
   * True when more of the stream has already arrived: bytes are buffered here, or the source
   * hands over its next chunk within two turns of the event loop (so data that already reached
   * the socket counts, and nothing waits for the network). The replica batches the frames that
   * are already here and applies a lone file at once. Never throws: a source error surfaces
   * from the next read.
   */
  async hasBuffered(): Promise<boolean> {
    if (this.buf.length > 0) return true;
    if (this.eof) return false;
    const p = (this.pending ??= this.iter.next());
    let settled = false;
    p.then(
      () => (settled = true),
      () => (settled = true),
    );
    // Two turns: the first may end before the event loop polled the socket again.
    for (let turn = 0; turn < 2 && !settled; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
    if (!settled) return false;
    let r: IteratorResult<Uint8Array>;
    try {
      r = await p;
    } catch {
      return true; // kept pending: the next read rethrows it
    }
    this.pending = null;
    this.take(r);
    return this.buf.length > 0;
  }

  private async readString(what: string): Promise<string> {
    const len = (await this.readExact(2, what)).readUInt16BE(0);
    if (len > MAX_STRING) throw new StreamError("STREAM_BAD_FRAME", `${what} is ${len} bytes long`);
    return (await this.readExact(len, what)).toString("utf8");
  }

  private async readExact(n: number, what: string): Promise<Buffer> {
    if (!(await this.fill(n))) throw new StreamError("STREAM_TRUNCATED", `stream ended inside a frame (${what})`);
    const out = Buffer.from(this.buf.subarray(0, n));
    this.consume(n);
    return out;
  }

  private consume(n: number): void {
    this.buf = this.buf.subarray(n);
  }

  /** Buffers at least `n` bytes; false if the stream ends first. */
  private async fill(n: number): Promise<boolean> {
    while (this.buf.length < n) {
      if (this.eof) return false;
      const p = this.pending ?? this.iter.next();
      this.pending = null;
      this.take(await p);
    }
    return true;
  }

  private take(r: IteratorResult<Uint8Array>): void {
    if (r.done) {
      this.eof = true;
      return;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, r.value]) : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
  }
}
