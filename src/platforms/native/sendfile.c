// Zero-copy file -> TCP socket for the /os route: Linux sendfile(2). Node has no sendfile
// for sockets, and on loopback or a fast NIC the kernel's per-byte TCP work dominates, so
// transfers run on a small pool of threads (one per CPU, each an epoll loop, the way nginx
// spreads the same work over its workers): the JS event loop only starts a transfer and
// hears when it is done.
//
// sendfile(socketFd, fileFd, offset, length, callback(errno, bytesSent)): sends
// [offset, offset+length) of fileFd to the socket, then calls back once on the JS thread.
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

typedef struct {
  int sock;
  int file;
  off_t offset;
  uint64_t remaining;
  uint64_t sent;
  int err;
  napi_threadsafe_function done;
} transfer_t;

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
static int nworkers;
static unsigned next_worker;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void complete(transfer_t *t, int epfd, int err) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, t->sock, NULL);
  t->err = err;
  napi_threadsafe_function done = t->done;
  napi_call_threadsafe_function(done, t, napi_tsfn_blocking);
  napi_release_threadsafe_function(done, napi_tsfn_release);
}

static void step(transfer_t *t, int epfd) {
  uint64_t budget = TURN_BYTES;
  while (t->remaining > 0 && budget > 0) {
    size_t chunk = (size_t)(t->remaining < budget ? t->remaining : budget);
    ssize_t n = sendfile(t->sock, t->file, &t->offset, chunk);
    if (n > 0) {
      t->remaining -= (uint64_t)n;
      t->sent += (uint64_t)n;
      budget -= (uint64_t)n < budget ? (uint64_t)n : budget;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // wait for room
    complete(t, epfd, n == 0 ? EIO : errno);  // n == 0: the file is shorter than promised
    return;
  }
  if (t->remaining == 0) complete(t, epfd, 0);
}

static void *worker_loop(void *arg) {
  int epfd = (int)(intptr_t)arg;
  struct epoll_event events[64];
  for (;;) {
    int n = epoll_wait(epfd, events, 64, -1);
    for (int i = 0; i < n; i++) step((transfer_t *)events[i].data.ptr, epfd);
  }
  return NULL;
}

static void start_pool(void) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int want = cpus < 1 ? 1 : cpus > MAX_WORKERS ? MAX_WORKERS : (int)cpus;
  for (int i = 0; i < want; i++) {
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) break;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, worker_loop, (void *)(intptr_t)epfd);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      close(epfd);
      break;
    }
    epfds[nworkers++] = epfd;
  }
}

static napi_value js_sendfile(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) {
    napi_throw_type_error(env, NULL, "sendfile(socketFd, fileFd, offset, length, callback)");
    return NULL;
  }
  int32_t sock, file;
  double offset, length;
  napi_valuetype cbtype;
  if (napi_get_value_int32(env, argv[0], &sock) != napi_ok || napi_get_value_int32(env, argv[1], &file) != napi_ok ||
      napi_get_value_double(env, argv[2], &offset) != napi_ok || napi_get_value_double(env, argv[3], &length) != napi_ok ||
      napi_typeof(env, argv[4], &cbtype) != napi_ok || cbtype != napi_function || offset < 0 || length < 0) {
    napi_throw_type_error(env, NULL, "sendfile(socketFd, fileFd, offset, length, callback): bad argument");
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
  napi_value name;
  napi_create_string_utf8(env, "fleetboot.sendfile", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &t->done) != napi_ok) {
    close(dupfd);
    free(t);
    napi_throw_error(env, NULL, "sendfile: cannot create the completion callback");
    return NULL;
  }
  pthread_once(&pool_once, start_pool);
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = t};
  int epfd = nworkers > 0 ? epfds[next_worker++ % (unsigned)nworkers] : -1;
  if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, dupfd, &ev) != 0) {
    napi_release_threadsafe_function(t->done, napi_tsfn_abort);
    close(dupfd);
    free(t);
    napi_throw_error(env, NULL, "sendfile: cannot hand the transfer to a worker");
    return NULL;
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "sendfile", NAPI_AUTO_LENGTH, js_sendfile, NULL, &fn);
  napi_set_named_property(env, exports, "sendfile", fn);
  return exports;
}
