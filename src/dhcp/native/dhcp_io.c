// Datagram I/O for the DHCP server, in batches. Node's dgram hands JavaScript one packet per
// callback, each in a freshly allocated 64 KiB buffer, and sends one syscall per reply; at
// the rates a boot storm brings, that overhead was a third of the server's CPU
// (bench/dhcp). This addon owns the UDP socket instead:
//
//   open(address, port, device, rcvbuf, slab, meta, onBatch) -> id
//     socket(2) + SO_REUSEADDR (several sockets share :67, one per interface) + SO_BROADCAST
//     + SO_RCVBUF and SO_SNDBUF of `rcvbuf` bytes each + SO_BINDTODEVICE when `device` is not "" (socket(7); docs/netboot-notes.md
//     pitfall 8: the bound device says which network a packet came from) + bind(2).
//     When readable (a uv_poll on the head node's own event loop), recvmmsg(2) fills up to
//     SLOTS packets into `slab` (SLOT bytes each) and `meta` (per packet: length, source
//     address as a host-order u32, source port, truncated flag), then calls onBatch(count)
//     once. JavaScript copies out what it keeps before returning.
//   send(id, packets: Buffer[], addresses: Uint32Array, ports: Uint32Array, from, count)
//     -> how many of packets[from..from+count) sendmmsg(2) took before one failed; the
//     caller sends the failed one through its fallback and calls again for the rest.
//   lastError() -> errno of the last failed send as text, for the caller's log
//   lastErrno() -> the same errno as a number (EAGAIN and ENOBUFS are worth a retry)
//   screenBootRequests(id) -> attaches a socket filter (classic BPF, socket(7) SO_ATTACH_FILTER)
//     that keeps any datagram that cannot be a BOOTREQUEST out of the receive buffer
//   drops(id) -> datagrams the kernel dropped for this socket: kept out by that filter, or
//     arriving at a full receive buffer (SO_MEMINFO's SK_MEMINFO_DROPS, sock_diag.h)
//   localPort(id) -> the bound port (tests bind port 0)
//   close(id)
//
// Under load the socket is read on a short timer rather than on each packet (see on_tick).
//
// Everything runs on the event loop thread: no locks.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sched.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <node_api.h>
#include <uv.h>

#define SLOTS 32
#define SLOT 4096
#define META 4
#define MAX_SOCKETS 64
#define SEND_BATCH 64

typedef struct {
  int fd;
  int in_use;   // slot taken (until libuv has closed the handle)
  int closing;  // close() called: no more callbacks, sends refused
  uv_poll_t poll;
  int tfd;           // coalescing: under load the socket is read when this timerfd fires
  uv_poll_t tick;
  int open_handles;  // libuv handles not yet closed (poll, tick)
  napi_env env;
  napi_ref on_batch;
  napi_ref slab_ref;
  napi_ref meta_ref;
  napi_async_context async;
  uint8_t *slab;
  uint32_t *meta;
} dhcp_sock;

static dhcp_sock socks[MAX_SOCKETS];
static int last_send_errno = 0;

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[200];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static void on_closed(uv_handle_t *h) {
  dhcp_sock *s = (dhcp_sock *)h->data;
  if (--s->open_handles > 0) return;
  close(s->tfd);
  close(s->fd);
  s->fd = -1;
  s->in_use = 0;
}

/**
 * Reads until the socket is empty, one JavaScript call per batch of up to SLOTS packets;
 * returns the packets read.
 *
 * Between batches the thread yields its CPU (sched_yield(2)). After a stall (a GC pause, a
 * commit, the scheduler running something else) the socket holds a backlog, and draining it
 * in one go held the CPU for milliseconds. Each reply sent meanwhile wakes its receiver with
 * a "sync" wake-up (sock_def_readable), which places the receiver on the sender's CPU on the
 * promise that the sender is about to sleep; it then waited for the whole backlog, and a
 * relay's (perfdhcp's) ~200 KiB receive buffer overflowed. Yielding after each batch keeps
 * that wait to one batch. With nothing else runnable, sched_yield returns at once.
 * bench/dhcp at 15,500/s: median OFFER loss 0.35% -> 0.15% over 8 interleaved runs.
 */
static int drain(dhcp_sock *s) {
  int total = 0;
  struct mmsghdr msgs[SLOTS];
  struct iovec iov[SLOTS];
  struct sockaddr_in from[SLOTS];
  // Until the socket is empty (a short batch), one JavaScript call per batch.
  for (;;) {
    if (total > 0) sched_yield();
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < SLOTS; i++) {
      iov[i].iov_base = s->slab + (size_t)i * SLOT;
      iov[i].iov_len = SLOT;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    int n = recvmmsg(s->fd, msgs, SLOTS, MSG_DONTWAIT, NULL);
    if (n <= 0) return total;  // EAGAIN (drained) or an error the next wake-up will see again
    total += n;
    for (int i = 0; i < n; i++) {
      uint32_t *m = s->meta + (size_t)i * META;
      m[0] = msgs[i].msg_len;
      m[1] = ntohl(from[i].sin_addr.s_addr);
      m[2] = ntohs(from[i].sin_port);
      m[3] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? 1 : 0;
    }
    napi_env env = s->env;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return total;
    napi_value cb, recv, argv[1], result;
    napi_get_reference_value(env, s->on_batch, &cb);
    napi_get_global(env, &recv);  // make_callback needs an object receiver
    napi_create_uint32(env, (uint32_t)n, &argv[0]);
    // make_callback: the async context, microtasks and nextTicks run as after any I/O callback.
    napi_status st = napi_make_callback(env, s->async, recv, cb, 1, argv, &result);
    if (st == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
    napi_close_handle_scope(env, scope);
    if (n < SLOTS || s->closing) return total;
  }
}

// Coalescing, as a NIC does with interrupts: waking the thread for each packet (epoll, the
// scheduler, a JavaScript call) cost about as much as handling it at boot-storm rates. Once
// a wake-up finds a packet, the socket is read COALESCE_US later on a timerfd(2) instead of
// on readiness, taking all that arrived meanwhile in one go (the receive buffer holds
// seconds of them); a tick that finds nothing goes back to waking on readiness, so an idle
// server still answers the first packet at once. A request waits at most COALESCE_US
// longer; DHCP clients wait seconds (RFC 2131 §4.1). 250 µs: 1 ms ticks sent replies in
// bursts big enough to overflow a relay's (perfdhcp's) receive buffer; 100 µs saved little
// (bench/dhcp: CPU per exchange 36-37 -> 32-34 µs at 15,500/s).
#define COALESCE_US 250

static void on_readable(uv_poll_t *p, int status, int events);

static void arm_tick(dhcp_sock *s) {
  struct itimerspec its = {.it_value = {.tv_sec = 0, .tv_nsec = COALESCE_US * 1000}};
  timerfd_settime(s->tfd, 0, &its, NULL);
}

static void on_tick(uv_poll_t *p, int status, int events) {
  dhcp_sock *s = (dhcp_sock *)p->data;
  if (status < 0 || s->closing) return;
  uint64_t expirations;
  if (read(s->tfd, &expirations, sizeof expirations) < 0 && errno == EAGAIN) return;
  int n = drain(s);
  if (s->closing) return;
  if (n > 0) {
    arm_tick(s);
  } else {
    uv_poll_stop(&s->tick);
    uv_poll_start(&s->poll, UV_READABLE, on_readable);
  }
}

static void on_readable(uv_poll_t *p, int status, int events) {
  dhcp_sock *s = (dhcp_sock *)p->data;
  if (status < 0 || !(events & UV_READABLE) || s->closing) return;
  int n = drain(s);
  if (n > 0 && !s->closing) {
    uv_poll_stop(&s->poll);
    arm_tick(s);
    uv_poll_start(&s->tick, UV_READABLE, on_tick);
  }
}

static int get_sock(napi_env env, napi_value v, dhcp_sock **out) {
  int32_t id;
  if (napi_get_value_int32(env, v, &id) != napi_ok || id < 0 || id >= MAX_SOCKETS || !socks[id].in_use || socks[id].closing) {
    napi_throw_error(env, NULL, "dhcp_io: not an open socket id");
    return 0;
  }
  *out = &socks[id];
  return 1;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 7) {
    napi_throw_type_error(env, NULL, "open(address, port, device, rcvbuf, slab, meta, onBatch)");
    return NULL;
  }
  char addr[64], dev[IFNAMSIZ + 1];
  size_t alen = 0, dlen = 0;
  int32_t port, rcvbuf;
  void *slab, *meta;
  size_t slab_len, meta_len;
  napi_typedarray_type mt;
  napi_value meta_ab;
  size_t meta_off;
  if (napi_get_value_string_utf8(env, argv[0], addr, sizeof addr, &alen) != napi_ok ||
      napi_get_value_int32(env, argv[1], &port) != napi_ok || port < 0 || port > 65535 ||
      napi_get_value_string_utf8(env, argv[2], dev, sizeof dev, &dlen) != napi_ok || dlen >= IFNAMSIZ ||
      napi_get_value_int32(env, argv[3], &rcvbuf) != napi_ok ||
      napi_get_buffer_info(env, argv[4], &slab, &slab_len) != napi_ok || slab_len < (size_t)SLOTS * SLOT ||
      napi_get_typedarray_info(env, argv[5], &mt, &meta_len, &meta, &meta_ab, &meta_off) != napi_ok ||
      mt != napi_uint32_array || meta_len < (size_t)SLOTS * META) {
    napi_throw_type_error(env, NULL, "open(address, port, device, rcvbuf, slab: Buffer(SLOTS*SLOT), meta: Uint32Array(SLOTS*4), onBatch): bad argument");
    return NULL;
  }
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
    napi_throw_type_error(env, NULL, "open: address is not an IPv4 address");
    return NULL;
  }
  int id = -1;
  for (int i = 0; i < MAX_SOCKETS; i++)
    if (!socks[i].in_use) { id = i; break; }
  if (id < 0) {
    napi_throw_error(env, NULL, "dhcp_io: too many sockets");
    return NULL;
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "setsockopt", e);
  }
  // A rack powering on is a burst; the kernel caps this at net.core.rmem_max.
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  // Replies of such a burst, broadcast through a bridge to taps that drain at their guests'
  // pace, sit in the device queue charged to this socket (socket(7) SO_SNDBUF): the default
  // ~200 KiB holds about 160 and the next send fails with EAGAIN. SO_SNDBUFFORCE passes
  // net.core.wmem_max with CAP_NET_ADMIN; otherwise SO_SNDBUF takes what the cap allows.
  if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &rcvbuf, sizeof rcvbuf);
  if (dlen > 0 && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, (socklen_t)(dlen + 1)) != 0) {
    int e = errno;
    close(fd);
    char what[64];
    snprintf(what, sizeof what, "SO_BINDTODEVICE %s", dev);
    return throw_errno(env, what, e);
  }
  if (bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
    int e = errno;
    close(fd);
    char what[96];
    snprintf(what, sizeof what, "bind %s:%d", addr, port);
    return throw_errno(env, what, e);
  }
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (tfd < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "timerfd_create", e);
  }
  dhcp_sock *s = &socks[id];
  memset(s, 0, sizeof *s);
  s->fd = fd;
  s->env = env;
  s->slab = (uint8_t *)slab;
  s->meta = (uint32_t *)meta;
  napi_create_reference(env, argv[4], 1, &s->slab_ref);
  napi_create_reference(env, argv[5], 1, &s->meta_ref);
  napi_create_reference(env, argv[6], 1, &s->on_batch);
  napi_value name;
  napi_create_string_utf8(env, "fleetboot.dhcp", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &s->async);
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_init(loop, &s->poll, fd);
  s->poll.data = s;
  s->tfd = tfd;
  uv_poll_init(loop, &s->tick, s->tfd);
  s->tick.data = s;
  s->open_handles = 2;
  s->in_use = 1;
  uv_poll_start(&s->poll, UV_READABLE, on_readable);
  napi_value out;
  napi_create_int32(env, id, &out);
  return out;
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6) {
    napi_throw_type_error(env, NULL, "send(id, packets, addresses, ports, from, count)");
    return NULL;
  }
  dhcp_sock *s;
  if (!get_sock(env, argv[0], &s)) return NULL;
  uint32_t from, count, alen;
  void *addrs, *ports;
  napi_typedarray_type t1, t2;
  napi_value ab;
  size_t off;
  size_t al, pl;
  if (napi_get_value_uint32(env, argv[4], &from) != napi_ok || napi_get_value_uint32(env, argv[5], &count) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &t1, &al, &addrs, &ab, &off) != napi_ok || t1 != napi_uint32_array ||
      napi_get_typedarray_info(env, argv[3], &t2, &pl, &ports, &ab, &off) != napi_ok || t2 != napi_uint32_array ||
      napi_get_array_length(env, argv[1], &alen) != napi_ok || from + count > alen || from + count > al || from + count > pl) {
    napi_throw_type_error(env, NULL, "send(id, packets: Buffer[], addresses: Uint32Array, ports: Uint32Array, from, count): bad argument");
    return NULL;
  }
  uint32_t done = 0;
  while (done < count) {
    struct mmsghdr msgs[SEND_BATCH];
    struct iovec iov[SEND_BATCH];
    struct sockaddr_in to[SEND_BATCH];
    uint32_t n = count - done < SEND_BATCH ? count - done : SEND_BATCH;
    memset(msgs, 0, sizeof msgs);
    for (uint32_t i = 0; i < n; i++) {
      uint32_t k = from + done + i;
      napi_value el;
      void *data;
      size_t len;
      if (napi_get_element(env, argv[1], k, &el) != napi_ok || napi_get_buffer_info(env, el, &data, &len) != napi_ok) {
        napi_throw_type_error(env, NULL, "send: packets must be Buffers");
        return NULL;
      }
      iov[i].iov_base = data;
      iov[i].iov_len = len;
      memset(&to[i], 0, sizeof to[i]);
      to[i].sin_family = AF_INET;
      to[i].sin_addr.s_addr = htonl(((uint32_t *)addrs)[k]);
      to[i].sin_port = htons((uint16_t)((uint32_t *)ports)[k]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &to[i];
      msgs[i].msg_hdr.msg_namelen = sizeof to[i];
    }
    int sent = sendmmsg(s->fd, msgs, n, MSG_DONTWAIT);
    if (sent < 0) {
      last_send_errno = errno;
      break;
    }
    done += (uint32_t)sent;
    // A short count means the next message failed; the caller's next call reports why.
    if ((uint32_t)sent < n) break;
  }
  napi_value out;
  napi_create_uint32(env, done, &out);
  return out;
}

static napi_value js_last_error(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_create_string_utf8(env, last_send_errno ? strerror(last_send_errno) : "", NAPI_AUTO_LENGTH, &out);
  return out;
}

static napi_value js_last_errno(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_create_int32(env, last_send_errno, &out);
  return out;
}

/** The one argument of a call that takes a socket id; throws (returns 0) when it is not one. */
static int sock_arg(napi_env env, napi_callback_info info, dhcp_sock **out) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 1) {
    napi_throw_type_error(env, NULL, "dhcp_io: expected one socket id");
    return 0;
  }
  return get_sock(env, argv[0], out);
}

// A flood of datagrams that are not DHCP at all filled the 4 MiB receive buffer faster than
// the event loop could read and discard them, and real clients' requests were dropped with
// them. The kernel runs this filter before queueing (sk_filter in udp_queue_rcv_one_skb, with
// offsets from the UDP header): a datagram shorter than the BOOTP header and magic cookie
// (8 + 236 + 4 bytes), with op other than BOOTREQUEST, or another cookie (RFC 2131 §2-3,
// RFC 2132 §2) never takes room in the buffer.
static struct sock_filter bootrequest_filter[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 8 + 240, 0, 5),
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 8),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 3),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 8 + 236),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x63825363, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
    BPF_STMT(BPF_RET | BPF_K, 0),
};

static napi_value js_screen(napi_env env, napi_callback_info info) {
  dhcp_sock *s;
  if (!sock_arg(env, info, &s)) return NULL;
  struct sock_fprog prog = {.len = sizeof bootrequest_filter / sizeof bootrequest_filter[0], .filter = bootrequest_filter};
  if (setsockopt(s->fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) return throw_errno(env, "SO_ATTACH_FILTER", errno);
  return NULL;
}

static napi_value js_drops(napi_env env, napi_callback_info info) {
  dhcp_sock *s;
  if (!sock_arg(env, info, &s)) return NULL;
  uint32_t mem[SK_MEMINFO_VARS] = {0};
  socklen_t len = sizeof mem;
  double drops = getsockopt(s->fd, SOL_SOCKET, SO_MEMINFO, mem, &len) == 0 && len > SK_MEMINFO_DROPS * sizeof(uint32_t) ? mem[SK_MEMINFO_DROPS] : 0;
  napi_value out;
  napi_create_double(env, drops, &out);
  return out;
}

static napi_value js_local_port(napi_env env, napi_callback_info info) {
  dhcp_sock *s;
  if (!sock_arg(env, info, &s)) return NULL;
  struct sockaddr_in sin;
  socklen_t len = sizeof sin;
  if (getsockname(s->fd, (struct sockaddr *)&sin, &len) != 0) return throw_errno(env, "getsockname", errno);
  napi_value out;
  napi_create_int32(env, ntohs(sin.sin_port), &out);
  return out;
}

static void release(dhcp_sock *s) {
  s->closing = 1;
  uv_poll_stop(&s->poll);
  uv_poll_stop(&s->tick);
  napi_delete_reference(s->env, s->on_batch);
  napi_delete_reference(s->env, s->slab_ref);
  napi_delete_reference(s->env, s->meta_ref);
  napi_async_destroy(s->env, s->async);
  // The fd closes, and the slot frees, once libuv has let go of the handle (on_closed).
  uv_close((uv_handle_t *)&s->poll, on_closed);
  uv_close((uv_handle_t *)&s->tick, on_closed);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  dhcp_sock *s;
  if (!sock_arg(env, info, &s)) return NULL;
  release(s);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  for (int i = 0; i < MAX_SOCKETS; i++) socks[i].fd = -1;
  napi_property_descriptor props[] = {
    {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
    {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
    {"lastError", NULL, js_last_error, NULL, NULL, NULL, napi_default, NULL},
    {"lastErrno", NULL, js_last_errno, NULL, NULL, NULL, napi_default, NULL},
    {"screenBootRequests", NULL, js_screen, NULL, NULL, NULL, napi_default, NULL},
    {"drops", NULL, js_drops, NULL, NULL, NULL, napi_default, NULL},
    {"localPort", NULL, js_local_port, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value slots, slot, meta;
  napi_create_int32(env, SLOTS, &slots);
  napi_create_int32(env, SLOT, &slot);
  napi_create_int32(env, META, &meta);
  napi_set_named_property(env, exports, "SLOTS", slots);
  napi_set_named_property(env, exports, "SLOT", slot);
  napi_set_named_property(env, exports, "META", meta);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
