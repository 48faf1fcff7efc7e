// Zero-copy file -> TCP socket for the /os route: Linux sendfile(2). Node has no sendfile
// for sockets, and on loopback or a fast NIC the kernel's per-byte TCP work dominates, so
// transfers run on a small pool of threads (one per CPU, each an epoll loop, the way nginx
// spreads the same work over its workers): the JS event loop only starts a transfer and
// hears when it is done.
//
// sendfile(socketFd, fileFd, offset, length, idleMs, callback(errno, bytesSent)) -> handle:
// sends [offset, offset+length) of fileFd to the socket, then calls back once on the JS
// thread. A transfer that moves no byte for idleMs ends with ETIMEDOUT (a client that stops
// reading would otherwise hold its socket, its file and the unsent bytes for good, since
// the kernel's own timers never fire on a zero window that the peer keeps acknowledging).
// cancel(handle) ends a transfer at once with ECANCELED (its connection closed, the server
// stopping); it may be called only before the callback ran. active() counts transfers.
// Either way the connection is reset (SO_LINGER 0, socket(7)) so the unsent bytes go too.
// The socket fd is dup()ed so libuv's own TCP handle (which keeps reading the connection)
// can close its fd at any time without a worker writing to a reused fd number; a client
// that hangs up makes sendfile fail with EPIPE / ECONNRESET, which the callback reports.
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

typedef struct transfer {
  int sock;
  int file;
  off_t offset;
  uint64_t remaining;
  uint64_t sent;
  int err;
  int cancelled; /* set by cancel() on the JS thread, then the socket is shut down */
  int worker;
  double idle_ms, last_progress;
  struct transfer *prev, *next; /* the worker's list, under its lock */
  napi_threadsafe_function done;
} transfer_t;

static int active_transfers;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/** Drops the connection with RST instead of FIN after the unsent bytes (socket(7) SO_LINGER). */
static void reset_connection(int sock) {
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(sock, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  shutdown(sock, SHUT_RDWR);
}

// On the JS thread: report and free.
static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  transfer_t *t = (transfer_t *)data;
  close(t->sock);
  if (env != NULL && cb != NULL) {
    napi_value argv[2], global, result;
    napi_create_int32(env, t->err, &argv[0]);
    napi_create_double(env, (double)t->sent, &argv[1]);
    napi_get_global(env, &global);
    napi_call_function(env, global, cb, 2, argv, &result);
  }
  free(t);
}

// Each worker owns the transfers registered on its epoll fd, so no transfer is touched by
// two threads. Level-triggered EPOLLOUT: a socket with room keeps being reported.
#define MAX_WORKERS 16
#define TURN_BYTES (4u << 20) /* per wake-up, so one fast client cannot starve the rest */
static int epfds[MAX_WORKERS];
static transfer_t *lists[MAX_WORKERS];
static pthread_mutex_t locks[MAX_WORKERS];
static int nworkers;
static unsigned next_worker;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

// Called with the worker's lock held.
static void complete(transfer_t *t, int epfd, int err) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, t->sock, NULL);
  if (t->prev) t->prev->next = t->next;
  else lists[t->worker] = t->next;
  if (t->next) t->next->prev = t->prev;
  if (err != 0) reset_connection(t->sock);
  __atomic_sub_fetch(&active_transfers, 1, __ATOMIC_RELAXED);
  t->err = err;
  napi_threadsafe_function done = t->done;
  napi_call_threadsafe_function(done, t, napi_tsfn_blocking);
  napi_release_threadsafe_function(done, napi_tsfn_release);
}

static void step(transfer_t *t, int epfd) {
  if (__atomic_load_n(&t->cancelled, __ATOMIC_ACQUIRE)) {
    complete(t, epfd, ECANCELED);
    return;
  }
  uint64_t budget = TURN_BYTES;
  while (t->remaining > 0 && budget > 0) {
    size_t chunk = (size_t)(t->remaining < budget ? t->remaining : budget);
    ssize_t n = sendfile(t->sock, t->file, &t->offset, chunk);
    if (n > 0) {
      t->remaining -= (uint64_t)n;
      t->sent += (uint64_t)n;
      budget -= (uint64_t)n < budget ? (uint64_t)n : budget;
      t->last_progress = now_ms();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // wait for room
    complete(t, epfd, n == 0 ? EIO : errno);  // n == 0: the file is shorter than promised
    return;
  }
  if (t->remaining == 0) complete(t, epfd, 0);
}

// Idle checks run at most every IDLE_TICK_MS, so a stalled transfer ends within idleMs
// plus one tick.
#define IDLE_TICK_MS 250
static void *worker_loop(void *arg) {
  int w = (int)(intptr_t)arg;
  int epfd = epfds[w];
  struct epoll_event events[64];
  double last_sweep = now_ms();
  for (;;) {
    int n = epoll_wait(epfd, events, 64, IDLE_TICK_MS);
    pthread_mutex_lock(&locks[w]);
    for (int i = 0; i < n; i++) step((transfer_t *)events[i].data.ptr, epfd);
    double now = now_ms();
    if (now - last_sweep >= IDLE_TICK_MS) {
      last_sweep = now;
      for (transfer_t *t = lists[w], *next; t != NULL; t = next) {
        next = t->next;
        if (t->idle_ms > 0 && now - t->last_progress >= t->idle_ms) complete(t, epfd, ETIMEDOUT);
      }
    }
    pthread_mutex_unlock(&locks[w]);
  }
  return NULL;
}

static void start_pool(void) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int want = cpus < 1 ? 1 : cpus > MAX_WORKERS ? MAX_WORKERS : (int)cpus;
  for (int i = 0; i < want; i++) {
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) break;
    pthread_mutex_init(&locks[i], NULL);
    epfds[i] = epfd;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, worker_loop, (void *)(intptr_t)i);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      close(epfd);
      break;
    }
    nworkers++;
  }
}

static napi_value js_sendfile(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "sendfile(socketFd, fileFd, offset, length, idleMs, callback)");
    return NULL;
  }
  int32_t sock, file;
  double offset, length, idle_ms;
  napi_valuetype cbtype;
  if (napi_get_value_int32(env, argv[0], &sock) != napi_ok || napi_get_value_int32(env, argv[1], &file) != napi_ok ||
      napi_get_value_double(env, argv[2], &offset) != napi_ok || napi_get_value_double(env, argv[3], &length) != napi_ok ||
      napi_get_value_double(env, argv[4], &idle_ms) != napi_ok || napi_typeof(env, argv[5], &cbtype) != napi_ok ||
      cbtype != napi_function || offset < 0 || length < 0 || !(idle_ms >= 1)) {
    napi_throw_type_error(env, NULL, "sendfile(socketFd, fileFd, offset, length, idleMs, callback): bad argument");
    return NULL;
  }
  int dupfd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
  if (dupfd < 0) {
    napi_throw_error(env, NULL, "sendfile: cannot duplicate the socket fd");
    return NULL;
  }
  transfer_t *t = calloc(1, sizeof(*t));
  t->sock = dupfd;
  t->file = file;
  t->offset = (off_t)offset;
  t->remaining = (uint64_t)length;
  t->idle_ms = idle_ms;
  t->last_progress = now_ms();
  napi_value name;
  napi_create_string_utf8(env, "fleetboot.sendfile", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[5], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &t->done) != napi_ok) {
    close(dupfd);
    free(t);
    napi_throw_error(env, NULL, "sendfile: cannot create the completion callback");
    return NULL;
  }
  pthread_once(&pool_once, start_pool);
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = t};
  int w = nworkers > 0 ? (int)(next_worker++ % (unsigned)nworkers) : -1;
  int added = 0;
  if (w >= 0) {
    // Listed and registered under the worker's lock, so its idle sweep never sees half a transfer.
    pthread_mutex_lock(&locks[w]);
    t->worker = w;
    if (epoll_ctl(epfds[w], EPOLL_CTL_ADD, dupfd, &ev) == 0) {
      t->next = lists[w];
      if (lists[w]) lists[w]->prev = t;
      lists[w] = t;
      __atomic_add_fetch(&active_transfers, 1, __ATOMIC_RELAXED);
      added = 1;
    }
    pthread_mutex_unlock(&locks[w]);
  }
  if (!added) {
    napi_release_threadsafe_function(t->done, napi_tsfn_abort);
    close(dupfd);
    free(t);
    napi_throw_error(env, NULL, "sendfile: cannot hand the transfer to a worker");
    return NULL;
  }
  napi_value handle;
  napi_create_external(env, t, NULL, NULL, &handle);
  return handle;
}

// On the JS thread, before the callback ran (the JS side forgets the handle in it): the
// worker sees the flag at its next wake-up, which the shutdown causes at once.
static napi_value js_cancel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *p = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_external(env, argv[0], &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "cancel(handle)");
    return NULL;
  }
  transfer_t *t = (transfer_t *)p;
  __atomic_store_n(&t->cancelled, 1, __ATOMIC_RELEASE);
  reset_connection(t->sock);
  return NULL;
}

static napi_value js_active(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value n;
  napi_create_int32(env, __atomic_load_n(&active_transfers, __ATOMIC_RELAXED), &n);
  return n;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "sendfile", NAPI_AUTO_LENGTH, js_sendfile, NULL, &fn);
  napi_set_named_property(env, exports, "sendfile", fn);
  napi_create_function(env, "cancel", NAPI_AUTO_LENGTH, js_cancel, NULL, &fn);
  napi_set_named_property(env, exports, "cancel", fn);
  napi_create_function(env, "active", NAPI_AUTO_LENGTH, js_active, NULL, &fn);
  napi_set_named_property(env, exports, "active", fn);
  return exports;
}
