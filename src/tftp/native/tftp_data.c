// The data phase of one TFTP read transfer on its own thread (native fast path; the JS
// Transfer in ../transfer.ts is the reference and the fallback, and this file follows it
// rule for rule). Measured here: lock-step TFTP is one round trip per block, and in Node
// each round trip costs an epoll wake, a recvmsg, a JS callback and a send on the shared
// event loop; tftpd-hpa pays only the syscalls. A thread per transfer blocked in recv(2)
// (SO_RCVTIMEO as the retransmission timer) pays two syscalls per round trip, like
// tftpd-hpa's process per transfer, and sends a window with one sendmmsg(2).
//
// start(opts, done) -> handle; cancel(handle).
//   opts: { local, address, port, data: Buffer | null, fd: number (-1 with data), size,
//           blksize, windowsize, oack: Buffer | null, rtoMs, rtoCeilingMs, minMs, retries,
//           lifetimeMs }
//   lifetimeMs bounds the whole transfer, progress or not (then status ST_TIMEOUT, code 1),
//   and rtoCeilingMs may not exceed RFC 2349 §2's 255 s, so no thread outlives its bound.
//   done(status, code, message, afterOack, block, retransmits) runs once on the JS thread.
// The socket is created, bound and connected here on the JS thread (RFC 1350 §4: a new
// TID per transfer; connected, so the kernel drops datagrams from any other TID), so no
// libuv handle reads the same fd. The file fd is dup()ed and the Buffer held by a
// reference until `done`, so JS may close its handle or drop the Buffer at once.
// cancel() may be called only before `done` has run (the struct is freed right after it).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <node_api.h>
#include <sys/time.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { ST_DONE = 0, ST_ABORTED = 1, ST_TIMEOUT = 2, ST_FAILED = 3, ST_STOPPED = 4 };
enum { OP_DATA = 3, OP_ACK = 4, OP_ERROR = 5 };
#define MAX_WINDOW 64

typedef struct {
  int sock, file;
  int cancelled; /* set by cancel() on the JS thread before it shuts the socket down */
  const uint8_t *data; /* memory source (held by ref), or NULL with file >= 0 */
  napi_ref ref;
  uint64_t size;
  uint32_t blksize, windowsize;
  uint8_t *oack;
  size_t oack_len;
  double rto, rto_ceiling, min_ms;
  double spin_ms; /* busy-poll budget per ACK wait (0: never) */
  int retries;
  double lifetime_ms; /* the transfer ends with ST_TIMEOUT, code 1, this long after it started */
  uint8_t *buf; /* file source: windowsize × blksize bytes read per window */
  /* result */
  int status, code, after_oack;
  char message[256];
  double block, retransmits;
  napi_threadsafe_function done;
} xfer_t;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void send_error(xfer_t *t, int code, const char *message) {
  uint8_t pkt[300];
  size_t n = strlen(message);
  if (n > sizeof(pkt) - 5) n = sizeof(pkt) - 5;
  pkt[0] = 0;
  pkt[1] = OP_ERROR;
  pkt[2] = (uint8_t)(code >> 8);
  pkt[3] = (uint8_t)code;
  memcpy(pkt + 4, message, n);
  pkt[4 + n] = 0;
  (void)send(t->sock, pkt, n + 5, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void finish(xfer_t *t, int status, int code, const char *message) {
  t->status = status;
  t->code = code;
  snprintf(t->message, sizeof(t->message), "%s", message);
}

typedef struct {
  xfer_t *t;
  int in_oack; /* waiting for ACK 0 of the OACK (RFC 2347 §2) */
  uint64_t last_block, acked, next, sent;
  double window_started_at, deadline, srtt, rttvar;
  int timeouts;
  int ended;
  uint8_t hdr[MAX_WINDOW][4];
  struct iovec iov[MAX_WINDOW][2];
  struct mmsghdr msgs[MAX_WINDOW];
  unsigned spin_skip, spin_backoff; /* waits to block through after a missed spin, and the next such count */
} run_t;

static void fail_send(run_t *r, int err) {
  // ICMP port unreachable on the connected socket: the client has gone (transfer.ts does the same).
  if (err == ECONNREFUSED) finish(r->t, ST_ABORTED, -1, "client port closed");
  else finish(r->t, ST_FAILED, err, strerror(err));
  r->t->after_oack = r->in_oack;
  r->ended = 1;
}

/** Sends blocks next..acked+windowsize with one sendmmsg (RFC 7440 §4 window). */
static void pump(run_t *r) {
  xfer_t *t = r->t;
  uint64_t end = r->acked + t->windowsize;
  if (end > r->last_block) end = r->last_block;
  unsigned k = 0;
  for (uint64_t b = r->next; b <= end; b++, k++) {
    uint64_t position = (b - 1) * t->blksize;
    size_t want = position >= t->size ? 0 : (size_t)(t->size - position < t->blksize ? t->size - position : t->blksize);
    r->hdr[k][0] = 0;
    r->hdr[k][1] = OP_DATA;
    r->hdr[k][2] = (uint8_t)((b >> 8) & 0xff); /* block numbers wrap at 65535 → 0 */
    r->hdr[k][3] = (uint8_t)(b & 0xff);
    r->iov[k][0].iov_base = r->hdr[k];
    r->iov[k][0].iov_len = 4;
    if (t->data) {
      r->iov[k][1].iov_base = (void *)(t->data + position);
    } else {
      uint8_t *slot = t->buf + (size_t)k * t->blksize;
      size_t got = 0;
      while (got < want) {
        ssize_t n = pread(t->file, slot + got, want - got, (off_t)(position + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          send_error(t, 0, "read error");
          finish(t, ST_FAILED, errno, "read error");
          r->ended = 1;
          return;
        }
        if (n == 0) break;
        got += (size_t)n;
      }
      if (got != want) {
        char m[128];
        snprintf(m, sizeof(m), "short read at block %llu: %zu of %zu bytes", (unsigned long long)b, got, want);
        send_error(t, 0, "file changed while being sent");
        finish(t, ST_FAILED, EIO, m);
        r->ended = 1;
        return;
      }
      r->iov[k][1].iov_base = slot;
    }
    r->iov[k][1].iov_len = want;
    memset(&r->msgs[k], 0, sizeof(r->msgs[k]));
    r->msgs[k].msg_hdr.msg_iov = r->iov[k];
    r->msgs[k].msg_hdr.msg_iovlen = 2;
  }
  unsigned done = 0;
  while (done < k) {
    int n = sendmmsg(t->sock, r->msgs + done, k - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_send(r, errno);
      return;
    }
    done += (unsigned)n;
  }
  if (end > r->sent) r->sent = end;
  r->next = end + 1;
}

static void arm(run_t *r, double now) {
  r->window_started_at = now;
  r->deadline = now + r->t->rto;
}

static void send_oack(run_t *r) {
  if (send(r->t->sock, r->t->oack, r->t->oack_len, MSG_NOSIGNAL) < 0) fail_send(r, errno);
}

/** Sends the OACK or the current window again. */
static void resend(run_t *r) {
  if (r->in_oack) {
    send_oack(r);
  } else {
    r->next = r->acked + 1;
    uint64_t left = r->last_block - r->acked;
    r->t->retransmits += (double)(left < r->t->windowsize ? left : r->t->windowsize);
    pump(r);
  }
  arm(r, now_ms());
}

/** The client moved forward: sample the RTT (Karn: only unretransmitted rounds), re-arm. */
static void progress(run_t *r) {
  xfer_t *t = r->t;
  double now = now_ms();
  if (r->timeouts == 0) {
    double sample = now - r->window_started_at;
    if (r->srtt == 0) {
      r->srtt = sample;
      r->rttvar = sample / 2;
    } else {
      r->rttvar = 0.75 * r->rttvar + 0.25 * fabs(r->srtt - sample);
      r->srtt = 0.875 * r->srtt + 0.125 * sample;
    }
  }
  double rto = r->srtt + 4 * r->rttvar;
  if (rto < t->min_ms) rto = t->min_ms;
  if (rto > t->rto_ceiling) rto = t->rto_ceiling;
  t->rto = rto;
  r->timeouts = 0;
  arm(r, now);
}

static void on_timeout(run_t *r) {
  xfer_t *t = r->t;
  r->timeouts++;
  if (r->timeouts > t->retries) {
    send_error(t, 0, "timed out waiting for ACK");
    finish(t, ST_TIMEOUT, 0, "timed out waiting for ACK");
    t->block = (double)(r->acked + 1);
    r->ended = 1;
    return;
  }
  // Exponential backoff (RFC 6298 §5.5), bounded by the ceiling.
  t->rto = t->rto * 2 > t->rto_ceiling ? t->rto_ceiling : t->rto * 2;
  resend(r);
}

static void on_message(run_t *r, const uint8_t *msg, ssize_t len) {
  xfer_t *t = r->t;
  if (len < 4) return;
  unsigned op = ((unsigned)msg[0] << 8) | msg[1];
  if (op == OP_ACK) {
    unsigned block = ((unsigned)msg[2] << 8) | msg[3];
    if (r->in_oack) {
      if (block != 0) return; /* RFC 2347 §2: the OACK is acknowledged with ACK 0 */
      r->in_oack = 0;
      pump(r);
      if (!r->ended) progress(r);
      return;
    }
    // Block numbers wrap at 65535 → 0; compare modulo 2^16 against the acknowledged count.
    unsigned delta = (block - (unsigned)(r->acked & 0xffff)) & 0xffff;
    if (delta == 0) {
      // A duplicate ACK answered at once breeds the Sorcerer's Apprentice (RFC 1123
      // §4.2.3.1): ignored within minMs of our last send; later it is the client's own
      // timeout asking us to go on from there (RFC 7440 §4).
      if (now_ms() - r->window_started_at >= t->min_ms) resend(r);
      return;
    }
    if (delta > r->sent - r->acked) return; /* past what we sent: bogus */
    r->acked += delta;
    if (r->acked >= r->last_block) {
      finish(t, ST_DONE, 0, "");
      r->ended = 1;
      return;
    }
    // RFC 7440 §4: the next window starts after the block acknowledged.
    r->next = r->acked + 1;
    pump(r);
    if (!r->ended) progress(r);
  } else if (op == OP_ERROR) {
    size_t n = 0;
    while (4 + n < (size_t)len && msg[4 + n] != 0 && n < sizeof(t->message) - 1) n++;
    char m[256];
    memcpy(m, msg + 4, n);
    m[n] = 0;
    finish(t, ST_ABORTED, ((int)msg[2] << 8) | msg[3], m);
    t->after_oack = r->in_oack;
    r->ended = 1;
  }
  // Anything else from the client's TID is ignored; the retransmission timer covers it.
}

/* Transfers running now, and how many of them may busy-poll (half the CPUs, at least one). */
static int active_transfers = 0;
static int spin_slots = 1;

/**
 * Waits for the client's next message by polling the socket for up to t->spin_ms before the
 * caller blocks in recv(2). In lock-step (RFC 1350) every block costs a round trip, and a
 * thread that sleeps in recv pays the scheduler's wake-up on each one: on the benchmark's VM
 * that was half the round trip, so tftpd-hpa and a blocking fleetboot both sat at ~27 MB/s
 * on loopback while a polling one reached 70 (bench/tftp). Bounded three ways: only while
 * no more transfers run than spin_slots (a storm of clients keeps the CPUs busy anyway),
 * only up to the budget, and after a poll that saw nothing the next 1, 2, 4 ... 64 waits
 * block at once, so a slow client (firmware on a real LAN) costs one budget per 64 blocks.
 * Returns what recv returned, or -1 with errno EAGAIN when nothing came.
 */
static ssize_t spin_recv(run_t *r, uint8_t *msg, size_t cap) {
  xfer_t *t = r->t;
  if (t->spin_ms <= 0 || __atomic_load_n(&active_transfers, __ATOMIC_RELAXED) > spin_slots) {
    errno = EAGAIN;
    return -1;
  }
  if (r->spin_skip > 0) {
    r->spin_skip--;
    errno = EAGAIN;
    return -1;
  }
  double until = now_ms() + t->spin_ms;
  for (;;) {
    ssize_t len = recv(t->sock, msg, cap, MSG_DONTWAIT);
    if (len >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      if (len >= 0) r->spin_backoff = 1;
      return len;
    }
    if (now_ms() >= until || __atomic_load_n(&t->cancelled, __ATOMIC_ACQUIRE)) break;
  }
  r->spin_skip = r->spin_backoff;
  if (r->spin_backoff < 64) r->spin_backoff *= 2;
  errno = EAGAIN;
  return -1;
}

static void *run_transfer(void *arg) {
  xfer_t *t = (xfer_t *)arg;
  __atomic_add_fetch(&active_transfers, 1, __ATOMIC_RELAXED);
  run_t *r = calloc(1, sizeof(*r));
  if (r == NULL) {
    finish(t, ST_FAILED, ENOMEM, "out of memory");
  } else {
    r->t = t;
    r->spin_backoff = 1;
    r->last_block = t->size / t->blksize + 1; /* a block shorter than blksize ends it (RFC 1350 §6) */
    r->next = 1;
    if (t->oack) {
      r->in_oack = 1;
      send_oack(r);
    } else {
      pump(r);
    }
    arm(r, now_ms());
    uint8_t msg[1024];
    double timeo_ms = -1; /* SO_RCVTIMEO currently set */
    double ends_at = now_ms() + t->lifetime_ms;
    while (!r->ended) {
      if (__atomic_load_n(&t->cancelled, __ATOMIC_ACQUIRE)) {
        send_error(t, 0, "server shutting down");
        finish(t, ST_STOPPED, 0, "");
        break;
      }
      double now = now_ms();
      if (now >= ends_at) {
        send_error(t, 0, "transfer took too long");
        finish(t, ST_TIMEOUT, 1, "transfer took too long");
        t->block = (double)(r->acked + 1);
        break;
      }
      double wait = (r->deadline < ends_at ? r->deadline : ends_at) - now;
      if (r->deadline <= now) {
        on_timeout(r);
        continue;
      }
      // One blocking recv per ACK, bounded by SO_RCVTIMEO (socket(7)): the timer needs no
      // poll(2) and no extra syscall. The option is only changed when the time left differs
      // from it (in the steady state it is the RTO, set again only when the RTO moves).
      double want = ceil(wait);
      if (want != timeo_ms && (want < timeo_ms || want > timeo_ms + 1)) {
        struct timeval tv = {.tv_sec = (time_t)(want / 1000), .tv_usec = (suseconds_t)((long)want % 1000) * 1000};
        if (setsockopt(t->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
          finish(t, ST_FAILED, errno, strerror(errno));
          break;
        }
        timeo_ms = want;
      }
      ssize_t len = spin_recv(r, msg, sizeof(msg));
      if (len < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) len = recv(t->sock, msg, sizeof(msg), 0);
      if (len < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue; /* the loop checks the deadline */
        fail_send(r, errno);
        break;
      }
      if (__atomic_load_n(&t->cancelled, __ATOMIC_ACQUIRE)) continue; /* shutdown(2) woke us */
      on_message(r, msg, len);
    }
    free(r);
  }
  __atomic_sub_fetch(&active_transfers, 1, __ATOMIC_RELAXED);
  napi_threadsafe_function done = t->done;
  napi_call_threadsafe_function(done, t, napi_tsfn_blocking);
  napi_release_threadsafe_function(done, napi_tsfn_release);
  return NULL;
}

static void free_xfer(napi_env env, xfer_t *t) {
  if (t->sock >= 0) close(t->sock);
  if (t->file >= 0) close(t->file);
  if (env != NULL && t->ref != NULL) napi_delete_reference(env, t->ref);
  free(t->oack);
  free(t->buf);
  free(t);
}

// On the JS thread: report, then free (cancel() is never called after this).
static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  xfer_t *t = (xfer_t *)data;
  if (env != NULL && cb != NULL) {
    napi_value argv[6], global, result;
    napi_create_int32(env, t->status, &argv[0]);
    napi_create_int32(env, t->code, &argv[1]);
    napi_create_string_utf8(env, t->message, NAPI_AUTO_LENGTH, &argv[2]);
    napi_get_boolean(env, t->after_oack != 0, &argv[3]);
    napi_create_double(env, t->block, &argv[4]);
    napi_create_double(env, t->retransmits, &argv[5]);
    napi_get_global(env, &global);
    napi_call_function(env, global, cb, 6, argv, &result);
  }
  free_xfer(env, t);
}

static int prop_double(napi_env env, napi_value obj, const char *name, double *out) {
  napi_value v;
  return napi_get_named_property(env, obj, name, &v) == napi_ok && napi_get_value_double(env, v, out) == napi_ok;
}

static int prop_string(napi_env env, napi_value obj, const char *name, char *out, size_t cap) {
  napi_value v;
  size_t n;
  return napi_get_named_property(env, obj, name, &v) == napi_ok && napi_get_value_string_utf8(env, v, out, cap, &n) == napi_ok;
}

static int parse_addr(const char *s, int family, uint16_t port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof(*ss));
  if (family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    *len = sizeof(*a);
    return inet_pton(AF_INET, s, &a->sin_addr) == 1;
  }
  struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  *len = sizeof(*a);
  return inet_pton(AF_INET6, s, &a->sin6_addr) == 1;
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char m[200];
  snprintf(m, sizeof(m), "tftp native: %s: %s", what, strerror(err));
  napi_throw_error(env, NULL, m);
  return NULL;
}

static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype t0, t1;
  if (argc < 2 || napi_typeof(env, argv[0], &t0) != napi_ok || t0 != napi_object || napi_typeof(env, argv[1], &t1) != napi_ok ||
      t1 != napi_function) {
    napi_throw_type_error(env, NULL, "start(options, done)");
    return NULL;
  }
  napi_value opts = argv[0];
  char local[64], address[64];
  double port, fd, size, blksize, windowsize, rto, ceiling, min_ms, retries, lifetime, spin_us = 0;
  if (!prop_string(env, opts, "local", local, sizeof(local)) || !prop_string(env, opts, "address", address, sizeof(address)) ||
      !prop_double(env, opts, "port", &port) || !prop_double(env, opts, "fd", &fd) || !prop_double(env, opts, "size", &size) ||
      !prop_double(env, opts, "blksize", &blksize) || !prop_double(env, opts, "windowsize", &windowsize) ||
      !prop_double(env, opts, "rtoMs", &rto) || !prop_double(env, opts, "rtoCeilingMs", &ceiling) ||
      !prop_double(env, opts, "minMs", &min_ms) || !prop_double(env, opts, "retries", &retries) ||
      !prop_double(env, opts, "lifetimeMs", &lifetime) || !(lifetime >= 1 && lifetime <= 86400000) ||
      !(rto >= 1 && ceiling >= rto && ceiling <= 255000) || port < 1 || port > 65535 ||
      size < 0 || blksize < 8 || blksize > 65464 || windowsize < 1 || windowsize > MAX_WINDOW || retries < 0) {
    napi_throw_type_error(env, NULL, "start(options, done): bad option");
    return NULL;
  }
  bool has_spin = false;
  napi_has_named_property(env, opts, "spinUs", &has_spin);
  if (has_spin && (!prop_double(env, opts, "spinUs", &spin_us) || spin_us < 0 || spin_us > 1000)) {
    napi_throw_type_error(env, NULL, "start(options, done): spinUs must be 0..1000");
    return NULL;
  }
  napi_value data_v, oack_v;
  bool is_buf = false;
  void *data = NULL;
  size_t data_len = 0;
  napi_get_named_property(env, opts, "data", &data_v);
  napi_is_buffer(env, data_v, &is_buf);
  if (is_buf) napi_get_buffer_info(env, data_v, &data, &data_len);
  if ((is_buf && data_len < (size_t)size) || (!is_buf && fd < 0)) {
    napi_throw_type_error(env, NULL, "start(options, done): need data (a Buffer of size bytes) or fd");
    return NULL;
  }
  bool has_oack = false;
  void *oack = NULL;
  size_t oack_len = 0;
  napi_get_named_property(env, opts, "oack", &oack_v);
  napi_is_buffer(env, oack_v, &has_oack);
  if (has_oack) napi_get_buffer_info(env, oack_v, &oack, &oack_len);

  int family = strchr(address, ':') ? AF_INET6 : AF_INET;
  struct sockaddr_storage la, ra;
  socklen_t llen, rlen;
  if (!parse_addr(local, family, 0, &la, &llen) || !parse_addr(address, family, (uint16_t)port, &ra, &rlen)) {
    napi_throw_type_error(env, NULL, "start(options, done): bad address");
    return NULL;
  }
  xfer_t *t = calloc(1, sizeof(*t));
  if (t == NULL) return throw_errno(env, "calloc", ENOMEM);
  t->sock = t->file = -1;
  t->size = (uint64_t)size;
  t->blksize = (uint32_t)blksize;
  t->windowsize = (uint32_t)windowsize;
  t->rto = rto;
  t->rto_ceiling = ceiling;
  t->min_ms = min_ms;
  t->retries = (int)retries;
  t->lifetime_ms = lifetime;
  t->spin_ms = spin_us / 1000.0;
  int err = 0;
  const char *what = NULL;
  t->sock = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (t->sock < 0) err = errno, what = "socket";
  else if (bind(t->sock, (struct sockaddr *)&la, llen) != 0) err = errno, what = "bind";
  else if (connect(t->sock, (struct sockaddr *)&ra, rlen) != 0) err = errno, what = "connect";
  else if (!is_buf && (t->file = fcntl((int)fd, F_DUPFD_CLOEXEC, 0)) < 0) err = errno, what = "dup";
  else if (!is_buf && (t->buf = malloc((size_t)t->windowsize * t->blksize)) == NULL) err = ENOMEM, what = "malloc";
  else if (has_oack && (t->oack = malloc(oack_len)) == NULL) err = ENOMEM, what = "malloc";
  if (err) {
    free_xfer(env, t);
    return throw_errno(env, what, err);
  }
  if (has_oack) {
    memcpy(t->oack, oack, oack_len);
    t->oack_len = oack_len;
  }
  if (is_buf) {
    t->data = (const uint8_t *)data;
    napi_create_reference(env, data_v, 1, &t->ref);
  }
  napi_value name;
  napi_create_string_utf8(env, "fleetboot.tftp", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &t->done) != napi_ok) {
    free_xfer(env, t);
    napi_throw_error(env, NULL, "tftp native: cannot create the completion callback");
    return NULL;
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t thread;
  int rc = pthread_create(&thread, &attr, run_transfer, t);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    napi_release_threadsafe_function(t->done, napi_tsfn_abort);
    free_xfer(env, t);
    return throw_errno(env, "pthread_create", rc);
  }
  napi_value handle;
  napi_create_external(env, t, NULL, NULL, &handle);
  return handle;
}

static napi_value js_cancel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *p = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "cancel(handle)");
    return NULL;
  }
  // shutdown(SHUT_RD) wakes a recv blocked on the socket (it returns 0); the flag tells that
  // from an empty datagram. Sends still work, so the worker can tell the client.
  xfer_t *t = (xfer_t *)p;
  __atomic_store_n(&t->cancelled, 1, __ATOMIC_RELEASE);
  shutdown(t->sock, SHUT_RD);
  return NULL;
}

NAPI_MODULE_INIT() {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  spin_slots = cpus >= 4 ? (int)(cpus / 2) : 1;
  napi_value fn;
  napi_create_function(env, "start", NAPI_AUTO_LENGTH, js_start, NULL, &fn);
  napi_set_named_property(env, exports, "start", fn);
  napi_create_function(env, "cancel", NAPI_AUTO_LENGTH, js_cancel, NULL, &fn);
  napi_set_named_property(env, exports, "cancel", fn);
  return exports;
}
