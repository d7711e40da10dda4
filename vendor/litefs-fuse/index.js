'use strict'
// litefs-fuse: path-based FUSE operations (fuse-native's interface) served by libfuse's
// low-level API from Node's event loop. See README.md for what it keeps of libfuse's high-level
// library (inode numbers, auto_cache, hard_remove, timeouts) and why it exists.

const { execFile } = require('child_process')
const binding = require('node-gyp-build')(__dirname)

const OP = binding.ops
const ENOENT = 2
const EIO = 5
const ENOSYS = 38
const ROOT = 1

// setattr's valid bits (fuse_lowlevel.h).
const SET_MODE = 1 << 0
const SET_UID = 1 << 1
const SET_GID = 1 << 2
const SET_SIZE = 1 << 3
const SET_ATIME = 1 << 4
const SET_MTIME = 1 << 5
const SET_ATIME_NOW = 1 << 7
const SET_MTIME_NOW = 1 << 8

/**
 * The inodes the kernel knows, by number and by path. An inode lives from the first lookup that
 * returns it until the kernel forgets it. An unlinked inode keeps its number with an empty path
 * for the handles still open on it (libfuse's hard_remove: no `.fuse_hidden` renames).
 */
class Inodes {
  constructor () {
    this.root = { ino: ROOT, path: '/', lookups: 1, cacheValid: false, mtime: 0, size: 0, statAt: 0 }
    this.byIno = new Map([[ROOT, this.root]])
    this.byPath = new Map([['/', this.root]])
    this.nextIno = ROOT + 1
  }

  get (ino) {
    return this.byIno.get(ino)
  }

  childPath (parent, name) {
    const dir = this.byIno.get(parent)
    if (!dir || dir.path === '') return null
    return dir.path === '/' ? '/' + name : dir.path + '/' + name
  }

  /** One more kernel reference to the inode at `path` (created at the first). */
  lookup (path) {
    let node = this.byPath.get(path)
    if (!node) {
      // Numbers are never reused: SQLite tells files apart by st_ino.
      node = { ino: this.nextIno++, path, lookups: 0, cacheValid: false, mtime: 0, size: 0, statAt: 0 }
      this.byIno.set(node.ino, node)
      this.byPath.set(path, node)
    }
    node.lookups++
    return node
  }

  forget (ino, count) {
    const node = this.byIno.get(ino)
    if (!node || ino === ROOT) return
    node.lookups -= count
    if (node.lookups > 0) return
    this.byIno.delete(ino)
    if (this.byPath.get(node.path) === node) this.byPath.delete(node.path)
  }

  unlinked (path) {
    const node = this.byPath.get(path)
    if (!node) return
    this.byPath.delete(path)
    node.path = ''
  }

  renamed (from, to) {
    this.unlinked(to)
    const node = this.byPath.get(from)
    if (!node) return
    this.byPath.delete(from)
    node.path = to
    this.byPath.set(to, node)
  }
}

class Fuse {
  /**
   * @param mnt mount point (an existing directory)
   * @param ops path-based operations, fuse-native's signatures
   * @param opts {
   *   mountOptions: string[]  fuse_mount options (fsname, subtype, allow_other, default_permissions, nonempty, ...)
   *   debug: boolean          libfuse's request trace on stderr
   *   maxWrite: number        largest write request (big_writes above 4 KiB)
   *   entryTimeout, attrTimeout, negativeTimeout: seconds the kernel may cache names, attributes, misses
   *   autoCache: boolean      keep file pages cached across opens unless mtime or size moved
   *   acAttrTimeout: number   seconds an attribute seen by getattr counts as fresh for autoCache (0: stat at every open)
   *   busyPollUs: number      microseconds to keep reading the device after a request before sleeping (0: never)
   * }
   */
  constructor (mnt, ops, opts = {}) {
    this.mnt = mnt
    this.ops = ops
    this.opts = {
      mountOptions: opts.mountOptions || [],
      debug: !!opts.debug,
      maxWrite: opts.maxWrite || 0,
      entryTimeout: opts.entryTimeout || 0,
      attrTimeout: opts.attrTimeout || 0,
      negativeTimeout: opts.negativeTimeout || 0,
      autoCache: !!opts.autoCache,
      acAttrTimeout: opts.acAttrTimeout || 0,
      busyPollUs: opts.busyPollUs || 0
    }
    /** PID of the process whose request is being handled (set before each operation runs). */
    this.callerPid = 0
    this.inodes = new Inodes()
    this.dirs = new Map()
    this.nextDir = 1
    this.handle = null
    this.onInit = null
    this.statScratch = new Uint32Array(18)
    this.dispatch = this.dispatch.bind(this)
  }

  mount (cb) {
    const lowLevel = []
    if (this.opts.debug) lowLevel.push('debug')
    if (this.opts.maxWrite > 4096) lowLevel.push('big_writes', 'max_write=' + this.opts.maxWrite)
    this.onInit = cb
    try {
      this.handle = binding.mount(this.mnt, this.opts.mountOptions.join(','), lowLevel.join(','), this.opts.busyPollUs, this.dispatch)
    } catch (err) {
      this.onInit = null
      return process.nextTick(cb, err)
    }
  }

  /** Lazy unmount: files still open keep being served until they are closed. */
  unmount (cb) {
    const handle = this.handle
    if (!handle) return process.nextTick(cb, null)
    execFile('fusermount', ['-u', '-z', this.mnt], (err) => {
      if (err) return cb(err)
      this.handle = null
      binding.unref(handle)
      cb(null)
    })
  }

  /** Requests handed to the operations and not answered yet. */
  outstanding () {
    return this.handle ? binding.outstanding(this.handle) : 0
  }

  // ---- requests ---------------------------------------------------------------------------

  dispatch (op, req, pid, a, b, c, d, e, f, g, h, i, j) {
    this.callerPid = pid
    try {
      switch (op) {
        case OP.lookup: return this.lookup(req, a, b)
        case OP.forget: return this.inodes.forget(a, b)
        case OP.getattr: return this.getattr(req, a, b, c)
        case OP.setattr: return this.setattr(req, a, b, c, d, e, f, g, h, i, j)
        case OP.mknod: return this.makeEntry(req, a, b, 'mknod', (path, cb) => this.ops.mknod(path, c, d, cb))
        case OP.mkdir: return this.makeEntry(req, a, b, 'mkdir', (path, cb) => this.ops.mkdir(path, c, cb))
        case OP.symlink: return this.makeEntry(req, b, c, 'symlink', (path, cb) => this.ops.symlink(a, path, cb))
        case OP.link: return this.link(req, a, b, c)
        case OP.unlink: return this.remove(req, a, b, 'unlink')
        case OP.rmdir: return this.remove(req, a, b, 'rmdir')
        case OP.rename: return this.rename(req, a, b, c, d)
        case OP.open: return this.open(req, a, b)
        case OP.read: return this.read(req, a, b, c, d)
        case OP.write: return this.write(req, a, b, c, d)
        case OP.flush: return this.byFile(req, a, 'flush', (path, cb) => this.ops.flush(path, b, cb))
        case OP.release: return this.byFile(req, a, 'release', (path, cb) => this.ops.release(path, b, cb))
        case OP.fsync: return this.byFile(req, a, 'fsync', (path, cb) => this.ops.fsync(path, !!b, c, cb))
        case OP.access: return this.byFile(req, a, 'access', (path, cb) => this.ops.access(path, b, cb))
        case OP.opendir: return this.opendir(req, a, b)
        case OP.readdir: return this.readdir(req, a, b, c, d)
        case OP.releasedir: return this.releasedir(req, a, b)
        case OP.fsyncdir: return this.fsyncdir(req, a, b, c)
        case OP.statfs: return this.statfs(req, a)
        case OP.create: return this.create(req, a, b, c)
        case OP.init: return this.initialized()
        default: return binding.replyErr(req, ENOSYS)
      }
    } finally {
      this.callerPid = 0
    }
  }

  initialized () {
    const cb = this.onInit
    this.onInit = null
    // After libfuse has answered INIT: the mount is usable once the callback runs.
    if (cb) setImmediate(cb, null)
  }

  /** A callback that answers `req` once: a second answer would touch a freed request. */
  once (req, answer) {
    let done = false
    return (...args) => {
      if (done) return
      done = true
      answer(...args)
    }
  }

  node (req, ino) {
    const node = this.inodes.get(ino)
    if (!node) binding.replyErr(req, ENOENT)
    return node
  }

  lookup (req, parent, name) {
    const path = this.inodes.childPath(parent, name)
    if (path === null) return binding.replyErr(req, ENOENT)
    this.ops.getattr(path, this.once(req, (err, st) => {
      if (err === -ENOENT && this.opts.negativeTimeout > 0) return binding.replyEntry(req, 0, null, this.opts.negativeTimeout, 0)
      if (err) return binding.replyErr(req, errnoOf(err))
      this.replyEntry(req, this.inodes.lookup(path), st)
    }))
  }

  replyEntry (req, node, st) {
    this.sawStat(node, st)
    binding.replyEntry(req, node.ino, this.statArray(st), this.opts.entryTimeout, this.opts.attrTimeout)
  }

  /** Answers `req` with the entry of a name just made (mknod, mkdir, symlink, link). */
  entryOf (req, path) {
    this.ops.getattr(path, (err, st) => {
      if (err) return binding.replyErr(req, errnoOf(err))
      this.replyEntry(req, this.inodes.lookup(path), st)
    })
  }

  /** A name made by mknod, mkdir or symlink: answered as a lookup of it. */
  makeEntry (req, parent, name, op, make) {
    const path = this.inodes.childPath(parent, name)
    if (path === null) return binding.replyErr(req, ENOENT)
    if (!this.ops[op]) return binding.replyErr(req, ENOSYS)
    make(path, this.once(req, (err) => {
      if (err) return binding.replyErr(req, errnoOf(err))
      this.entryOf(req, path)
    }))
  }

  link (req, ino, newParent, newName) {
    const node = this.node(req, ino)
    if (!node) return
    const path = this.inodes.childPath(newParent, newName)
    if (path === null) return binding.replyErr(req, ENOENT)
    if (!this.ops.link) return binding.replyErr(req, ENOSYS)
    this.ops.link(node.path, path, this.once(req, (err) => {
      if (err) return binding.replyErr(req, errnoOf(err))
      this.entryOf(req, path)
    }))
  }

  remove (req, parent, name, op) {
    const path = this.inodes.childPath(parent, name)
    if (path === null) return binding.replyErr(req, ENOENT)
    if (!this.ops[op]) return binding.replyErr(req, ENOSYS)
    this.ops[op](path, this.once(req, (err) => {
      if (!err) this.inodes.unlinked(path)
      binding.replyErr(req, errnoOf(err))
    }))
  }

  rename (req, parent, name, newParent, newName) {
    const from = this.inodes.childPath(parent, name)
    const to = this.inodes.childPath(newParent, newName)
    if (from === null || to === null) return binding.replyErr(req, ENOENT)
    if (!this.ops.rename) return binding.replyErr(req, ENOSYS)
    this.ops.rename(from, to, this.once(req, (err) => {
      if (!err) this.inodes.renamed(from, to)
      binding.replyErr(req, errnoOf(err))
    }))
  }

  /** An operation on an inode that answers with an errno only. */
  byFile (req, ino, op, run) {
    const node = this.node(req, ino)
    if (!node) return
    // No flush operation: ENOSYS tells the kernel to send no FLUSH again (one round trip less
    // on every close()). release has nothing to refuse.
    if (!this.ops[op]) return binding.replyErr(req, op === 'release' ? 0 : ENOSYS)
    run(node.path, this.once(req, (err) => binding.replyErr(req, errnoOf(err))))
  }

  getattr (req, ino, hasFile, fh) {
    const node = this.node(req, ino)
    if (!node) return
    this.stat(node, hasFile ? fh : null, this.once(req, (err, st) => {
      if (err) return binding.replyErr(req, errnoOf(err))
      this.sawStat(node, st)
      binding.replyAttr(req, node.ino, this.statArray(st), this.opts.attrTimeout)
    }))
  }

  stat (node, fh, cb) {
    if (fh !== null && this.ops.fgetattr) return this.ops.fgetattr(node.path, fh, cb)
    this.ops.getattr(node.path, cb)
  }

  /** chmod, chown, truncate, utimens as asked, in libfuse's order, then the new attributes. */
  setattr (req, ino, valid, hasFile, fh, mode, uid, gid, size, atime, mtime) {
    const node = this.node(req, ino)
    if (!node) return
    const file = hasFile ? fh : null
    const path = node.path
    const pid = this.callerPid
    const steps = []
    if (valid & SET_MODE) steps.push(['chmod', (cb) => this.ops.chmod(path, mode, cb)])
    if (valid & (SET_UID | SET_GID)) {
      steps.push(['chown', (cb) => this.ops.chown(path, valid & SET_UID ? uid : -1, valid & SET_GID ? gid : -1, cb)])
    }
    if (valid & SET_SIZE) {
      if (file !== null && this.ops.ftruncate) steps.push(['ftruncate', (cb) => this.ops.ftruncate(path, file, size, cb)])
      else steps.push(['truncate', (cb) => this.ops.truncate(path, size, cb)])
    }
    if (valid & (SET_ATIME | SET_MTIME)) {
      const now = Date.now()
      const a = valid & SET_ATIME_NOW ? now : valid & SET_ATIME ? atime : now
      const m = valid & SET_MTIME_NOW ? now : valid & SET_MTIME ? mtime : now
      steps.push(['utimens', (cb) => this.ops.utimens(path, a, m, cb)])
    }
    const answer = this.once(req, (err, st) => {
      if (err) return binding.replyErr(req, errnoOf(err))
      this.sawStat(node, st)
      binding.replyAttr(req, node.ino, this.statArray(st), this.opts.attrTimeout)
    })
    const next = (k) => {
      if (k === steps.length) return this.stat(node, file, answer)
      const [op, run] = steps[k]
      if (!this.ops[op]) return answer(-ENOSYS)
      this.callerPid = pid // a step after an asynchronous one still acts for this request's caller
      run((err) => (err ? answer(err) : next(k + 1)))
    }
    next(0)
  }

  open (req, ino, flags) {
    const node = this.node(req, ino)
    if (!node) return
    this.ops.open(node.path, flags, this.once(req, (err, fh) => {
      if (err) return binding.replyErr(req, errnoOf(err))
      this.keepCache(node, fh || 0, (keep) => binding.replyOpen(req, fh || 0, keep))
    }))
  }

  /**
   * libfuse's auto_cache: the kernel keeps a file's cached pages at open only if its mtime and
   * size are what the last getattr saw. The file is stat'ed again at open when that was longer
   * ago than acAttrTimeout.
   */
  keepCache (node, fh, cb) {
    if (!this.opts.autoCache) return cb(false)
    const decide = () => {
      const keep = node.cacheValid
      node.cacheValid = true
      cb(keep)
    }
    if (!node.cacheValid || performance.now() - node.statAt <= this.opts.acAttrTimeout * 1000) return decide()
    this.stat(node, fh, (err, st) => {
      if (err) node.cacheValid = false
      else this.sawStat(node, st)
      decide()
    })
  }

  sawStat (node, st) {
    const mtime = toMs(st && st.mtime)
    const size = (st && st.size) || 0
    if (node.cacheValid && (mtime !== node.mtime || size !== node.size)) node.cacheValid = false
    node.mtime = mtime
    node.size = size
    node.statAt = performance.now()
  }

  read (req, ino, size, offset, fh) {
    const node = this.node(req, ino)
    if (!node) return
    const buf = Buffer.allocUnsafe(size)
    this.ops.read(node.path, fh, buf, size, offset, this.once(req, (res) => {
      if (res < 0) return binding.replyErr(req, -res)
      binding.replyBuf(req, buf, res || 0)
    }))
  }

  write (req, ino, buf, offset, fh) {
    const node = this.node(req, ino)
    if (!node) return
    this.ops.write(node.path, fh, buf, buf.length, offset, this.once(req, (res) => {
      if (res < 0) return binding.replyErr(req, -res)
      binding.replyWrite(req, res || 0)
    }))
  }

  create (req, parent, name, mode) {
    const path = this.inodes.childPath(parent, name)
    if (path === null) return binding.replyErr(req, ENOENT)
    if (!this.ops.create) return binding.replyErr(req, ENOSYS)
    this.ops.create(path, mode, this.once(req, (err, fh) => {
      if (err) return binding.replyErr(req, errnoOf(err))
      this.ops.getattr(path, (err, st) => {
        if (err) {
          // As libfuse does: the new file cannot be described, so its handle goes.
          return this.ops.release(path, fh || 0, () => binding.replyErr(req, errnoOf(err)))
        }
        const node = this.inodes.lookup(path)
        this.sawStat(node, st)
        binding.replyCreate(req, node.ino, this.statArray(st), this.opts.entryTimeout, this.opts.attrTimeout, fh || 0)
      })
    }))
  }

  // Directory handles are the shim's own: a listing is read once, at offset 0, and served in
  // pieces as the kernel asks (libfuse's high-level library does the same).
  opendir (req, ino, flags) {
    const node = this.node(req, ino)
    if (!node) return
    const opened = (err, fh) => {
      if (err) return binding.replyErr(req, errnoOf(err))
      const dh = this.nextDir++
      this.dirs.set(dh, { fh: fh || 0, node, names: null })
      binding.replyOpen(req, dh, false)
    }
    if (!this.ops.opendir) return opened(0, 0)
    this.ops.opendir(node.path, flags, this.once(req, opened))
  }

  readdir (req, ino, size, offset, dh) {
    const dir = this.dirs.get(dh)
    if (!dir) return binding.replyErr(req, EIO)
    if (dir.names !== null && offset > 0) return binding.replyReaddir(req, dir.names, offset, size)
    if (!this.ops.readdir) return binding.replyErr(req, ENOSYS)
    this.ops.readdir(dir.node.path, this.once(req, (err, names) => {
      if (err) return binding.replyErr(req, errnoOf(err))
      dir.names = names || []
      binding.replyReaddir(req, dir.names, offset, size)
    }))
  }

  releasedir (req, ino, dh) {
    const dir = this.dirs.get(dh)
    this.dirs.delete(dh)
    if (!dir || !this.ops.releasedir) return binding.replyErr(req, 0)
    this.ops.releasedir(dir.node.path, dir.fh, this.once(req, (err) => binding.replyErr(req, errnoOf(err))))
  }

  fsyncdir (req, ino, datasync, dh) {
    const dir = this.dirs.get(dh)
    if (!dir) return binding.replyErr(req, EIO)
    if (!this.ops.fsyncdir) return binding.replyErr(req, ENOSYS)
    this.ops.fsyncdir(dir.node.path, !!datasync, dir.fh, this.once(req, (err) => binding.replyErr(req, errnoOf(err))))
  }

  statfs (req, ino) {
    const node = this.inodes.get(ino) || this.inodes.root
    if (!this.ops.statfs) return binding.replyStatfs(req, statfsArray(null))
    this.ops.statfs(node.path, this.once(req, (err, s) => {
      if (err) return binding.replyErr(req, errnoOf(err))
      binding.replyStatfs(req, statfsArray(s))
    }))
  }

  /** fuse-native's stat object as the Uint32Array the binding reads (copied before it returns). */
  statArray (st) {
    const ints = this.statScratch
    ints[0] = (st && st.mode) || 0
    ints[1] = (st && st.uid) || 0
    ints[2] = (st && st.gid) || 0
    setDouble(ints, 3, (st && st.size) || 0)
    ints[5] = (st && st.dev) || 0
    ints[6] = (st && st.nlink) || 1
    ints[7] = 0
    ints[8] = (st && st.rdev) || 0
    ints[9] = (st && st.blksize) || 0
    setDouble(ints, 10, (st && st.blocks) || 0)
    setDouble(ints, 12, toMs(st && st.atime) || Date.now())
    setDouble(ints, 14, toMs(st && st.mtime) || Date.now())
    setDouble(ints, 16, toMs(st && st.ctime) || Date.now())
    return ints
  }
}

/** fuse-native's operations answer with a negative errno (or 0); libfuse wants it positive. */
function errnoOf (err) {
  if (!err) return 0
  if (typeof err === 'number') return err < 0 ? -err : err
  return EIO
}

function setDouble (arr, idx, num) {
  arr[idx] = num % 4294967296
  arr[idx + 1] = (num - arr[idx]) / 4294967296
}

function toMs (t) {
  if (typeof t === 'number') return t
  if (!t) return 0
  return t.getTime()
}

function statfsArray (s) {
  const ints = new Uint32Array(11)
  if (!s) return ints
  ints[0] = s.bsize || 0
  ints[1] = s.frsize || 0
  ints[2] = s.blocks || 0
  ints[3] = s.bfree || 0
  ints[4] = s.bavail || 0
  ints[5] = s.files || 0
  ints[6] = s.ffree || 0
  ints[7] = s.favail || 0
  ints[8] = s.fsid || 0
  ints[9] = s.flag || 0
  ints[10] = s.namemax || 0
  return ints
}

module.exports = Fuse
