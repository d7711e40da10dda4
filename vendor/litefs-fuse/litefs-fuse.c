// litefs-fuse: libfuse 2.9's low-level API served from Node's event loop.
//
// The kernel's FUSE device is polled by libuv on the main thread. Each readable event reads
// requests and hands each one to a single JavaScript dispatch function on that same thread;
// JavaScript answers through the reply functions below, at once or later. No thread sits
// between the application and the handler: a request costs the application's wake-up of the
// event loop and the loop's wake-up of the application, where a libfuse worker thread doubled
// both (docs/benchmarks.md).
//
// Everything here runs on the event loop thread. The JS side (index.js) maps inodes to paths.

#define FUSE_USE_VERSION 29

#include <node_api.h>
#include <uv.h>
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

// Operation codes shared with index.js (exported as `ops`).
enum {
  OP_INIT = 0, OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_MKNOD, OP_MKDIR, OP_UNLINK,
  OP_RMDIR, OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE, OP_FLUSH, OP_RELEASE,
  OP_FSYNC, OP_OPENDIR, OP_READDIR, OP_RELEASEDIR, OP_FSYNCDIR, OP_STATFS, OP_ACCESS, OP_CREATE,
  OP_COUNT
};

static const char *OP_NAMES[OP_COUNT] = {
  "init", "lookup", "forget", "getattr", "setattr", "mknod", "mkdir", "unlink", "rmdir",
  "symlink", "rename", "link", "open", "read", "write", "flush", "release", "fsync", "opendir",
  "readdir", "releasedir", "fsyncdir", "statfs", "access", "create"
};

typedef struct {
  napi_env env;
  napi_ref dispatch;            // JS (op, req, pid, ...args)
  napi_async_context async;
  struct fuse_session *se;
  struct fuse_chan *ch;
  char *buf;                    // one request at a time: each is fully handed over before the next read
  size_t bufsize;
  uv_poll_t poll;
  uint64_t busy_poll_ns;        // how long to keep reading after the last request before sleeping in epoll
  int64_t outstanding;          // requests handed to JS and not yet answered
  int ended;                    // the kernel closed the connection (unmounted)
  int destroyed;                // session destroyed; the struct itself is never freed (a few hundred bytes per mount)
} mount_t;

#define CHECK(env, call) do { if ((call) != napi_ok) { fail(env, #call); return NULL; } } while (0)

static void fail (napi_env env, const char *what) {
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, NULL, info && info->error_message ? info->error_message : what);
}

// ---- values ---------------------------------------------------------------------------------

static napi_value num (napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static napi_value str (napi_env env, const char *s) {
  napi_value out;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &out);
  return out;
}

// A request travels to JS as its address in a number (user-space addresses fit in 53 bits).
static napi_value req_value (napi_env env, fuse_req_t req) {
  napi_value out;
  napi_create_int64(env, (int64_t) (uintptr_t) req, &out);
  return out;
}

// ---- from the kernel to JS ------------------------------------------------------------------

static void destroy_session (mount_t *m);

static void call_js (mount_t *m, size_t argc, napi_value *argv) {
  napi_env env = m->env;
  napi_value fn, global;
  napi_get_reference_value(env, m->dispatch, &fn);
  napi_get_global(env, &global);
  // make_callback, not call_function: promise jobs and ticks queued by the handler run before
  // the next request is read, as they would after any other libuv callback.
  if (napi_make_callback(env, m->async, global, fn, argc, argv, NULL) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

#define BEGIN(op, req, nargs) \
  mount_t *m = (mount_t *) fuse_req_userdata(req); \
  napi_env env = m->env; \
  napi_handle_scope scope; \
  napi_open_handle_scope(env, &scope); \
  napi_value argv[3 + (nargs)]; \
  argv[0] = num(env, op); \
  argv[1] = req_value(env, req); \
  argv[2] = num(env, fuse_req_ctx(req)->pid); \
  m->outstanding++;

#define END() \
  call_js(m, sizeof(argv) / sizeof(argv[0]), argv); \
  napi_close_handle_scope(env, scope);

#define FH(fi) num(env, (fi) == NULL ? 0 : (double) (fi)->fh)

static void ll_init (void *userdata, struct fuse_conn_info *conn) {
  mount_t *m = (mount_t *) userdata;
  napi_env env = m->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[3] = { num(env, OP_INIT), num(env, 0), num(env, 0) };
  call_js(m, 3, argv);
  napi_close_handle_scope(env, scope);
}

static void ll_lookup (fuse_req_t req, fuse_ino_t parent, const char *name) {
  BEGIN(OP_LOOKUP, req, 2)
  argv[3] = num(env, parent);
  argv[4] = str(env, name);
  END()
}

static void ll_forget (fuse_req_t req, fuse_ino_t ino, unsigned long nlookup) {
  mount_t *m = (mount_t *) fuse_req_userdata(req);
  napi_env env = m->env;
  fuse_reply_none(req);
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[5] = { num(env, OP_FORGET), num(env, 0), num(env, 0), num(env, ino), num(env, nlookup) };
  call_js(m, 5, argv);
  napi_close_handle_scope(env, scope);
}

static void ll_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  BEGIN(OP_GETATTR, req, 3)
  argv[3] = num(env, ino);
  argv[4] = num(env, fi != NULL);
  argv[5] = FH(fi);
  END()
}

static double timespec_ms (const struct timespec *ts) {
  return (double) ts->tv_sec * 1000 + (double) ts->tv_nsec / 1e6;
}

static void ll_setattr (fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  BEGIN(OP_SETATTR, req, 10)
  argv[3] = num(env, ino);
  argv[4] = num(env, to_set);
  argv[5] = num(env, fi != NULL);
  argv[6] = FH(fi);
  argv[7] = num(env, attr->st_mode);
  argv[8] = num(env, attr->st_uid);
  argv[9] = num(env, attr->st_gid);
  argv[10] = num(env, (double) attr->st_size);
  argv[11] = num(env, timespec_ms(&attr->st_atim));
  argv[12] = num(env, timespec_ms(&attr->st_mtim));
  END()
}

static void ll_mknod (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  BEGIN(OP_MKNOD, req, 4)
  argv[3] = num(env, parent);
  argv[4] = str(env, name);
  argv[5] = num(env, mode);
  argv[6] = num(env, rdev);
  END()
}

static void ll_mkdir (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  BEGIN(OP_MKDIR, req, 3)
  argv[3] = num(env, parent);
  argv[4] = str(env, name);
  argv[5] = num(env, mode);
  END()
}

static void ll_unlink (fuse_req_t req, fuse_ino_t parent, const char *name) {
  BEGIN(OP_UNLINK, req, 2)
  argv[3] = num(env, parent);
  argv[4] = str(env, name);
  END()
}

static void ll_rmdir (fuse_req_t req, fuse_ino_t parent, const char *name) {
  BEGIN(OP_RMDIR, req, 2)
  argv[3] = num(env, parent);
  argv[4] = str(env, name);
  END()
}

static void ll_symlink (fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  BEGIN(OP_SYMLINK, req, 3)
  argv[3] = str(env, link);
  argv[4] = num(env, parent);
  argv[5] = str(env, name);
  END()
}

static void ll_rename (fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname) {
  BEGIN(OP_RENAME, req, 4)
  argv[3] = num(env, parent);
  argv[4] = str(env, name);
  argv[5] = num(env, newparent);
  argv[6] = str(env, newname);
  END()
}

static void ll_link (fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  BEGIN(OP_LINK, req, 3)
  argv[3] = num(env, ino);
  argv[4] = num(env, newparent);
  argv[5] = str(env, newname);
  END()
}

static void ll_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  BEGIN(OP_OPEN, req, 2)
  argv[3] = num(env, ino);
  argv[4] = num(env, fi->flags);
  END()
}

static void ll_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  BEGIN(OP_READ, req, 4)
  argv[3] = num(env, ino);
  argv[4] = num(env, size);
  argv[5] = num(env, (double) off);
  argv[6] = FH(fi);
  END()
}

static void ll_write (fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off, struct fuse_file_info *fi) {
  BEGIN(OP_WRITE, req, 4)
  argv[3] = num(env, ino);
  // A copy: the receive buffer is reused by the next request, and a handler may answer later.
  void *copy;
  napi_create_buffer_copy(env, size, data, &copy, &argv[4]);
  argv[5] = num(env, (double) off);
  argv[6] = FH(fi);
  END()
}

static void ll_flush (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  BEGIN(OP_FLUSH, req, 2)
  argv[3] = num(env, ino);
  argv[4] = FH(fi);
  END()
}

static void ll_release (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  BEGIN(OP_RELEASE, req, 2)
  argv[3] = num(env, ino);
  argv[4] = FH(fi);
  END()
}

static void ll_fsync (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  BEGIN(OP_FSYNC, req, 3)
  argv[3] = num(env, ino);
  argv[4] = num(env, datasync);
  argv[5] = FH(fi);
  END()
}

static void ll_opendir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  BEGIN(OP_OPENDIR, req, 2)
  argv[3] = num(env, ino);
  argv[4] = num(env, fi->flags);
  END()
}

static void ll_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  BEGIN(OP_READDIR, req, 4)
  argv[3] = num(env, ino);
  argv[4] = num(env, size);
  argv[5] = num(env, (double) off);
  argv[6] = FH(fi);
  END()
}

static void ll_releasedir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  BEGIN(OP_RELEASEDIR, req, 2)
  argv[3] = num(env, ino);
  argv[4] = FH(fi);
  END()
}

static void ll_fsyncdir (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  BEGIN(OP_FSYNCDIR, req, 3)
  argv[3] = num(env, ino);
  argv[4] = num(env, datasync);
  argv[5] = FH(fi);
  END()
}

static void ll_statfs (fuse_req_t req, fuse_ino_t ino) {
  BEGIN(OP_STATFS, req, 1)
  argv[3] = num(env, ino);
  END()
}

static void ll_access (fuse_req_t req, fuse_ino_t ino, int mask) {
  BEGIN(OP_ACCESS, req, 2)
  argv[3] = num(env, ino);
  argv[4] = num(env, mask);
  END()
}

static void ll_create (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  BEGIN(OP_CREATE, req, 4)
  argv[3] = num(env, parent);
  argv[4] = str(env, name);
  argv[5] = num(env, mode);
  argv[6] = num(env, fi->flags);
  END()
}

// Not registered (libfuse answers ENOSYS): readlink, xattrs, locks (the kernel then keeps POSIX
// and flock locks locally, DESIGN.md section 4), bmap, ioctl, poll, fallocate.
static const struct fuse_lowlevel_ops LL_OPS = {
  .init = ll_init,
  .lookup = ll_lookup,
  .forget = ll_forget,
  .getattr = ll_getattr,
  .setattr = ll_setattr,
  .mknod = ll_mknod,
  .mkdir = ll_mkdir,
  .unlink = ll_unlink,
  .rmdir = ll_rmdir,
  .symlink = ll_symlink,
  .rename = ll_rename,
  .link = ll_link,
  .open = ll_open,
  .read = ll_read,
  .write = ll_write,
  .flush = ll_flush,
  .release = ll_release,
  .fsync = ll_fsync,
  .opendir = ll_opendir,
  .readdir = ll_readdir,
  .releasedir = ll_releasedir,
  .fsyncdir = ll_fsyncdir,
  .statfs = ll_statfs,
  .access = ll_access,
  .create = ll_create,
};

// ---- the device -----------------------------------------------------------------------------

// Bounded so that timers, sockets and the thread pool's completions get their turn under a
// flood of requests: one wake-up handles at most this many per read pass, and spends at most
// MAX_TURN_NS before it returns to libuv (which calls it again at once if the device is readable).
#define MAX_REQUESTS_PER_WAKEUP 64
#define MAX_TURN_NS 1000000

static void on_poll_closed (uv_handle_t *handle) {
  mount_t *m = (mount_t *) handle->data;
  if (m->outstanding == 0) destroy_session(m);
}

// The connection is gone: stop reading. The session (and the device fd) go once every request
// handed to JS has been answered, because an answer writes through them.
static void end_connection (mount_t *m) {
  if (m->ended) return;
  m->ended = 1;
  uv_poll_stop(&m->poll);
  uv_close((uv_handle_t *) &m->poll, on_poll_closed);
}

static void destroy_session (mount_t *m) {
  if (m->destroyed) return;
  m->destroyed = 1;
  fuse_session_destroy(m->se);  // closes the device fd
  m->se = NULL;
  m->ch = NULL;
  free(m->buf);
  m->buf = NULL;
  napi_delete_reference(m->env, m->dispatch);
  napi_async_destroy(m->env, m->async);
}

// Reads and handles what the device holds. Returns 0 when it is empty, -1 once the connection ended.
static int drain (mount_t *m, int *handled) {
  for (int i = 0; i < MAX_REQUESTS_PER_WAKEUP && !m->ended; i++) {
    struct fuse_chan *ch = m->ch;
    int res = fuse_chan_recv(&ch, m->buf, m->bufsize);
    if (res == -EINTR) continue;
    if (res == -EAGAIN) return 0;
    // 0: the session exited (ENODEV: unmounted); < 0: the device failed.
    if (res <= 0) { end_connection(m); return -1; }
    fuse_session_process(m->se, m->buf, res, ch);
    (*handled)++;
  }
  return m->ended ? -1 : 0;
}

static void on_readable (uv_poll_t *handle, int status, int events) {
  mount_t *m = (mount_t *) handle->data;
  if (status < 0) return end_connection(m);
  int handled = 0;
  if (drain(m, &handled) < 0) return;
  // Busy-poll for a moment before going back to epoll. An application's next request usually
  // follows its answer within microseconds, and waking this thread once it slept costs tens of
  // microseconds in a VM whose idle vCPUs halt (Firecracker: a VM exit per wake-up; measured in
  // docs/benchmarks.md). Other events wait at most MAX_TURN_NS, however busy the device.
  uint64_t now = uv_hrtime();
  uint64_t turn_end = now + MAX_TURN_NS;
  uint64_t deadline = now + m->busy_poll_ns;
  while (m->busy_poll_ns > 0 && (now = uv_hrtime()) < deadline && now < turn_end) {
    // Polite spinning: a thread waiting for this CPU (perhaps the very app whose next request
    // this waits for) runs first.
    sched_yield();
    int before = handled;
    if (drain(m, &handled) < 0) return;
    if (handled != before) deadline = uv_hrtime() + m->busy_poll_ns;
  }
}

// ---- from JS to the kernel ------------------------------------------------------------------

static fuse_req_t take_req (napi_env env, napi_value v, mount_t **mount) {
  int64_t addr = 0;
  if (napi_get_value_int64(env, v, &addr) != napi_ok || addr == 0) {
    napi_throw_type_error(env, NULL, "litefs-fuse: not a request");
    return NULL;
  }
  fuse_req_t req = (fuse_req_t) (uintptr_t) addr;
  mount_t *m = (mount_t *) fuse_req_userdata(req);
  m->outstanding--;
  *mount = m;
  return req;
}

// The last answer after the connection ended lets the session go.
static void after_reply (mount_t *m) {
  if (m->ended && m->outstanding == 0) destroy_session(m);
}

static uint32_t *uint32s (napi_env env, napi_value v, size_t min) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint32_array || length < min) {
    napi_throw_type_error(env, NULL, "litefs-fuse: expected a Uint32Array");
    return NULL;
  }
  return (uint32_t *) data;
}

static uint64_t u64 (uint32_t **ints) {
  uint64_t low = *((*ints)++);
  uint64_t high = *((*ints)++);
  return high * 4294967296ULL + low;
}

static void ms_timespec (struct timespec *ts, uint64_t ms) {
  ts->tv_sec = ms / 1000;
  ts->tv_nsec = (ms % 1000) * 1000000;
}

// The stat layout of index.js's statArray().
#define STAT_INTS 18
static void fill_stat (uint32_t *ints, struct stat *st, fuse_ino_t ino) {
  memset(st, 0, sizeof(*st));
  st->st_mode = *ints++;
  st->st_uid = *ints++;
  st->st_gid = *ints++;
  st->st_size = u64(&ints);
  st->st_dev = *ints++;
  st->st_nlink = *ints++;
  ints++;  // the handler's st_ino is replaced by the inode the kernel knows the file by
  st->st_ino = ino;
  st->st_rdev = *ints++;
  st->st_blksize = *ints++;
  st->st_blocks = u64(&ints);
  ms_timespec(&st->st_atim, u64(&ints));
  ms_timespec(&st->st_mtim, u64(&ints));
  ms_timespec(&st->st_ctim, u64(&ints));
}

#define REPLY(name, nargs) \
  static napi_value name (napi_env env, napi_callback_info info) { \
    size_t argc = nargs; \
    napi_value argv[nargs]; \
    CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL)); \
    mount_t *m; \
    fuse_req_t req = take_req(env, argv[0], &m); \
    if (req == NULL) return NULL;

#define REPLY_END \
    after_reply(m); \
    return NULL; \
  }

static double arg_num (napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}

// (req, errno): errno positive, 0 for success.
REPLY(reply_err, 2)
  fuse_reply_err(req, (int) arg_num(env, argv[1]));
REPLY_END

static void fill_entry (napi_env env, napi_value *argv, struct fuse_entry_param *e, uint32_t *ints) {
  memset(e, 0, sizeof(*e));
  e->ino = (fuse_ino_t) arg_num(env, argv[1]);
  e->entry_timeout = arg_num(env, argv[3]);
  e->attr_timeout = arg_num(env, argv[4]);
  if (ints != NULL) fill_stat(ints, &e->attr, e->ino);
}

// (req, ino, stat | null, entryTimeout, attrTimeout): ino 0 caches a negative entry.
REPLY(reply_entry, 5)
  napi_valuetype type;
  napi_typeof(env, argv[2], &type);
  uint32_t *ints = NULL;
  if (type != napi_null) {
    ints = uint32s(env, argv[2], STAT_INTS);
    if (ints == NULL) { fuse_reply_err(req, EIO); after_reply(m); return NULL; }
  }
  struct fuse_entry_param e;
  fill_entry(env, argv, &e, ints);
  fuse_reply_entry(req, &e);
REPLY_END

// (req, ino, stat, entryTimeout, attrTimeout, fh)
REPLY(reply_create, 6)
  uint32_t *ints = uint32s(env, argv[2], STAT_INTS);
  if (ints == NULL) { fuse_reply_err(req, EIO); after_reply(m); return NULL; }
  struct fuse_entry_param e;
  fill_entry(env, argv, &e, ints);
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof(fi));
  fi.fh = (uint64_t) arg_num(env, argv[5]);
  fuse_reply_create(req, &e, &fi);
REPLY_END

// (req, ino, stat, attrTimeout)
REPLY(reply_attr, 4)
  uint32_t *ints = uint32s(env, argv[2], STAT_INTS);
  if (ints == NULL) { fuse_reply_err(req, EIO); after_reply(m); return NULL; }
  struct stat st;
  fill_stat(ints, &st, (fuse_ino_t) arg_num(env, argv[1]));
  fuse_reply_attr(req, &st, arg_num(env, argv[3]));
REPLY_END

// (req, fh, keepCache)
REPLY(reply_open, 3)
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof(fi));
  fi.fh = (uint64_t) arg_num(env, argv[1]);
  bool keep = false;
  napi_get_value_bool(env, argv[2], &keep);
  fi.keep_cache = keep ? 1 : 0;
  fuse_reply_open(req, &fi);
REPLY_END

// (req, buffer, length)
REPLY(reply_buf, 3)
  void *data = NULL;
  size_t size = 0;
  if (napi_get_buffer_info(env, argv[1], &data, &size) != napi_ok) { fuse_reply_err(req, EIO); after_reply(m); fail(env, "buffer"); return NULL; }
  size_t length = (size_t) arg_num(env, argv[2]);
  fuse_reply_buf(req, data, length < size ? length : size);
REPLY_END

// (req, count)
REPLY(reply_write, 2)
  fuse_reply_write(req, (size_t) arg_num(env, argv[1]));
REPLY_END

// (req, Uint32Array of index.js's statfsArray())
REPLY(reply_statfs, 2)
  uint32_t *ints = uint32s(env, argv[1], 11);
  if (ints == NULL) { fuse_reply_err(req, EIO); after_reply(m); return NULL; }
  struct statvfs s;
  memset(&s, 0, sizeof(s));
  s.f_bsize = ints[0];
  s.f_frsize = ints[1];
  s.f_blocks = ints[2];
  s.f_bfree = ints[3];
  s.f_bavail = ints[4];
  s.f_files = ints[5];
  s.f_ffree = ints[6];
  s.f_favail = ints[7];
  s.f_fsid = ints[8];
  s.f_flag = ints[9];
  s.f_namemax = ints[10];
  fuse_reply_statfs(req, &s);
REPLY_END

// (req, names[], offset, size): entry i carries offset i + 1, so a listing resumes where the
// kernel's buffer ran out.
REPLY(reply_readdir, 4)
  uint32_t count = 0;
  napi_get_array_length(env, argv[1], &count);
  size_t size = (size_t) arg_num(env, argv[3]);
  char *out = malloc(size);
  if (out == NULL) { fuse_reply_err(req, ENOMEM); after_reply(m); return NULL; }
  size_t used = 0;
  struct stat st;
  memset(&st, 0, sizeof(st));
  st.st_ino = 0xffffffff;  // unknown, as the high-level library reports it
  char name[1024];
  for (uint32_t i = (uint32_t) arg_num(env, argv[2]); i < count; i++) {
    napi_value v;
    size_t len = 0;
    napi_get_element(env, argv[1], i, &v);
    if (napi_get_value_string_utf8(env, v, name, sizeof(name), &len) != napi_ok) continue;
    size_t need = fuse_add_direntry(req, out + used, size - used, name, &st, i + 1);
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, out, used);
  free(out);
REPLY_END

// ---- mount / unmount ------------------------------------------------------------------------

static int args_from (const char *opts, char **argv, struct fuse_args *args) {
  argv[0] = (char *) "litefs";
  argv[1] = (char *) "-o";
  argv[2] = (char *) opts;
  int argc = opts[0] == '\0' ? 1 : 3;
  struct fuse_args a = FUSE_ARGS_INIT(argc, argv);
  *args = a;
  return argc;
}

static char *utf8 (napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s == NULL) return NULL;
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

// (mountpoint, mountOptions, lowLevelOptions, busyPollMicroseconds, dispatch) -> handle. Mounts through fusermount;
// the kernel's INIT arrives as the first request (OP_INIT).
static napi_value mount (napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *mnt = utf8(env, argv[0]), *mount_opts = utf8(env, argv[1]), *ll_opts = utf8(env, argv[2]);
  napi_value result = NULL;
  mount_t *m = calloc(1, sizeof(mount_t));
  if (mnt == NULL || mount_opts == NULL || ll_opts == NULL || m == NULL) {
    napi_throw_type_error(env, NULL, "litefs-fuse: mount(mountpoint, mountOptions, lowLevelOptions, busyPollMicroseconds, dispatch)");
    goto done;
  }

  char *mount_argv[3], *ll_argv[3];
  struct fuse_args mount_args, ll_args;
  args_from(mount_opts, mount_argv, &mount_args);
  args_from(ll_opts, ll_argv, &ll_args);

  struct fuse_chan *ch = fuse_mount(mnt, &mount_args);
  fuse_opt_free_args(&mount_args);
  if (ch == NULL) {
    napi_throw_error(env, "MOUNT_FAILED", "fuse_mount failed (libfuse wrote why on stderr)");
    goto done;
  }
  m->env = env;
  double busy_poll_us = arg_num(env, argv[3]);
  m->busy_poll_ns = busy_poll_us > 0 ? (uint64_t) (busy_poll_us * 1000) : 0;
  struct fuse_session *se = fuse_lowlevel_new(&ll_args, &LL_OPS, sizeof(LL_OPS), m);
  fuse_opt_free_args(&ll_args);
  if (se == NULL) {
    fuse_unmount(mnt, ch);
    napi_throw_error(env, "MOUNT_FAILED", "fuse_lowlevel_new failed (an unknown option? libfuse wrote why on stderr)");
    goto done;
  }
  fuse_session_add_chan(se, ch);
  m->se = se;
  m->ch = ch;
  m->bufsize = fuse_chan_bufsize(ch);
  m->buf = malloc(m->bufsize);

  int fd = fuse_chan_fd(ch);
  // Non-blocking: the loop reads until EAGAIN. Close-on-exec: children must not hold the
  // connection (DESIGN.md section 3).
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);

  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  napi_create_reference(env, argv[4], 1, &m->dispatch);
  napi_async_init(env, NULL, str(env, "litefs-fuse"), &m->async);
  uv_poll_init(loop, &m->poll, fd);
  m->poll.data = m;
  uv_poll_start(&m->poll, UV_READABLE, on_readable);
  napi_create_external(env, m, NULL, NULL, &result);
  m = NULL;

done:
  free(mnt);
  free(mount_opts);
  free(ll_opts);
  free(m);
  return result;
}

static mount_t *mount_arg (napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *m = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_external(env, argv[0], &m) != napi_ok) {
    napi_throw_type_error(env, NULL, "litefs-fuse: not a mount handle");
    return NULL;
  }
  return (mount_t *) m;
}

// After fusermount -u: the mount no longer keeps the process alive. Requests on files still
// open through a lazy unmount are still served until the kernel ends the connection.
static napi_value unref (napi_env env, napi_callback_info info) {
  mount_t *m = mount_arg(env, info);
  if (m != NULL && !m->ended) uv_unref((uv_handle_t *) &m->poll);
  return NULL;
}

// Requests handed to JS and not answered yet (tests and diagnostics).
static napi_value outstanding (napi_env env, napi_callback_info info) {
  mount_t *m = mount_arg(env, info);
  return m == NULL ? NULL : num(env, (double) m->outstanding);
}

static napi_value init (napi_env env, napi_value exports) {
  napi_value ops;
  napi_create_object(env, &ops);
  for (int i = 0; i < OP_COUNT; i++) napi_set_named_property(env, ops, OP_NAMES[i], num(env, i));
  napi_set_named_property(env, exports, "ops", ops);

  napi_property_descriptor fns[] = {
    { "mount", NULL, mount, NULL, NULL, NULL, napi_default, NULL },
    { "unref", NULL, unref, NULL, NULL, NULL, napi_default, NULL },
    { "outstanding", NULL, outstanding, NULL, NULL, NULL, napi_default, NULL },
    { "replyErr", NULL, reply_err, NULL, NULL, NULL, napi_default, NULL },
    { "replyEntry", NULL, reply_entry, NULL, NULL, NULL, napi_default, NULL },
    { "replyCreate", NULL, reply_create, NULL, NULL, NULL, napi_default, NULL },
    { "replyAttr", NULL, reply_attr, NULL, NULL, NULL, napi_default, NULL },
    { "replyOpen", NULL, reply_open, NULL, NULL, NULL, napi_default, NULL },
    { "replyBuf", NULL, reply_buf, NULL, NULL, NULL, napi_default, NULL },
    { "replyWrite", NULL, reply_write, NULL, NULL, NULL, napi_default, NULL },
    { "replyStatfs", NULL, reply_statfs, NULL, NULL, NULL, napi_default, NULL },
    { "replyReaddir", NULL, reply_readdir, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof(fns) / sizeof(fns[0]), fns);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
