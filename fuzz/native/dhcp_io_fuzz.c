// libFuzzer harness for the DHCP server's batched receive (drain() in
// src/dhcp/native/dhcp_io.c, included whole): the input is a list of datagrams (lengths up
// to past the SLOT size, bytes from the input), sent over UDP on loopback to a socket set up
// the way open() leaves it, then drained. The harness runs in a network namespace of its own
// (unshare(2) CLONE_NEWNET at start, lo brought up), so no packet leaves it; that needs root.
// Checks: every datagram sent is handed over once and in order, in batches of at most SLOTS;
// each slot holds the datagram's first SLOT bytes with its length, the sender's address and
// port, and the truncated flag exactly when it was longer than SLOT (recvmmsg(2) MSG_TRUNC).
#define _GNU_SOURCE
#include "../../src/dhcp/native/dhcp_io.c"

#include <net/if.h>
#include <sys/ioctl.h>

#define HARNESS "dhcp_io_fuzz"
#include "harness.h"

#define MAX_DATAGRAMS 100
#define MAX_LEN 9000

static dhcp_sock *sock_under_test;
static uint32_t batch_count;
static size_t delivered, sent;
static uint16_t sender_port;
static size_t lens[MAX_DATAGRAMS];
static uint8_t payloads[MAX_DATAGRAMS][MAX_LEN];

// The few Node-API calls drain() makes per batch; the callback is the harness's check.
napi_status napi_open_handle_scope(napi_env env, napi_handle_scope *result) {
  (void)env;
  *result = (napi_handle_scope)1;
  return napi_ok;
}
napi_status napi_close_handle_scope(napi_env env, napi_handle_scope scope) {
  (void)env, (void)scope;
  return napi_ok;
}
napi_status napi_get_reference_value(napi_env env, napi_ref ref, napi_value *result) {
  (void)env, (void)ref;
  *result = (napi_value)1;
  return napi_ok;
}
napi_status napi_get_global(napi_env env, napi_value *result) {
  (void)env;
  *result = (napi_value)2;
  return napi_ok;
}
napi_status napi_create_uint32(napi_env env, uint32_t value, napi_value *result) {
  (void)env;
  batch_count = value;
  *result = (napi_value)3;
  return napi_ok;
}
napi_status napi_make_callback(napi_env env, napi_async_context ctx, napi_value recv, napi_value func, size_t argc, const napi_value *argv, napi_value *result) {
  (void)env, (void)ctx, (void)recv, (void)func, (void)argc, (void)argv, (void)result;
  dhcp_sock *s = sock_under_test;
  CHECK(batch_count >= 1 && batch_count <= SLOTS, "a batch of %u", batch_count);
  for (uint32_t i = 0; i < batch_count; i++, delivered++) {
    CHECK(delivered < sent, "more datagrams delivered than sent (%zu)", sent);
    const uint32_t *m = s->meta + (size_t)i * META;
    size_t len = lens[delivered];
    size_t kept = len < SLOT ? len : SLOT;
    CHECK(m[0] == kept, "slot %u: length %u, datagram %zu is %zu bytes", i, m[0], delivered, len);
    CHECK(m[1] == 0x7f000001 && m[2] == sender_port, "slot %u: from %08x:%u", i, m[1], m[2]);
    CHECK(m[3] == (len > SLOT), "slot %u: truncated flag %u for %zu bytes", i, m[3], len);
    CHECK(memcmp(s->slab + (size_t)i * SLOT, payloads[delivered], kept) == 0, "slot %u: bytes differ from datagram %zu", i, delivered);
  }
  return napi_ok;
}

static int rx = -1, tx = -1;
static struct sockaddr_in rx_addr;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  if (unshare(CLONE_NEWNET) != 0) {
    fprintf(stderr, "dhcp_io_fuzz: unshare(CLONE_NEWNET): %s (run as root)\n", strerror(errno));
    exit(2);
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
  CHECK(ioctl(fd, SIOCSIFFLAGS, &ifr) == 0, "lo up: %s", strerror(errno));
  close(fd);
  // The receiving socket as open() makes it: non-blocking, bound, a large receive buffer.
  rx = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int rcvbuf = 8 << 20;
  setsockopt(rx, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  memset(&rx_addr, 0, sizeof rx_addr);
  rx_addr.sin_family = AF_INET;
  rx_addr.sin_addr.s_addr = htonl(0x7f000001);
  CHECK(bind(rx, (struct sockaddr *)&rx_addr, sizeof rx_addr) == 0, "bind");
  socklen_t l = sizeof rx_addr;
  getsockname(rx, (struct sockaddr *)&rx_addr, &l);
  tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in tx_addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
  CHECK(bind(tx, (struct sockaddr *)&tx_addr, sizeof tx_addr) == 0, "bind");
  l = sizeof tx_addr;
  getsockname(tx, (struct sockaddr *)&tx_addr, &l);
  sender_port = ntohs(tx_addr.sin_port);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t *slab;
  static uint32_t *meta;
  if (!slab) slab = malloc((size_t)SLOTS * SLOT), meta = malloc((size_t)SLOTS * META * sizeof(uint32_t));
  // The input: [length u16][filler byte] per datagram. A datagram is its filler byte, with
  // its index and length written at its start, middle and end, so a slot holding another
  // datagram's bytes, or bytes from the wrong place, differs.
  sent = delivered = 0;
  for (size_t i = 0; i + 3 <= size && sent < MAX_DATAGRAMS; i += 3) {
    size_t len = ((size_t)data[i] << 8 | data[i + 1]) % (MAX_LEN + 1);
    uint8_t *p = payloads[sent];
    memset(p, data[i + 2], len);
    const uint8_t stamp[4] = {(uint8_t)sent, (uint8_t)(sent >> 8), (uint8_t)len, (uint8_t)(len >> 8)};
    size_t at[3] = {0, len / 2, len >= 4 ? len - 4 : 0};
    for (int k = 0; k < 3; k++) memcpy(p + at[k], stamp, len < 4 ? len : 4);
    lens[sent] = len;
    ssize_t n = sendto(tx, payloads[sent], len, 0, (struct sockaddr *)&rx_addr, sizeof rx_addr);
    CHECK(n == (ssize_t)len, "sendto %zu bytes: %s", len, strerror(errno));
    sent++;
  }
  dhcp_sock s;
  memset(&s, 0, sizeof s);
  s.fd = rx;
  s.in_use = 1;
  s.slab = slab;
  s.meta = meta;
  sock_under_test = &s;
  int total = drain(&s);
  CHECK((size_t)total == sent && delivered == sent, "sent %zu, drained %d, delivered %zu", sent, total, delivered);
  return 0;
}
