// libFuzzer harness for the TFTP data phase (src/tftp/native/tftp_data.c, included whole so
// on_message, pump and on_timeout are callable): one transfer with fuzzer-chosen size,
// blksize, windowsize, OACK or not, memory or file source, then the client's datagrams from
// the input (ACKs, ERRORs, anything) and retransmission timeouts. The server's socket is one
// end of a Unix datagram socketpair; the harness reads the other end. Checks after every
// event: the counters stay ordered (acked <= sent <= last block), every DATA block is
// numbered RFC 1350 §5 style and holds exactly the file's bytes for that block (RFC 1350 §6:
// blksize bytes, the last one shorter), the OACK is sent as given (RFC 2347 §2), and a
// transfer reported done was acknowledged to its last block.
#define _GNU_SOURCE
#include "../../src/tftp/native/tftp_data.c"

#include <sys/mman.h>

#define HARNESS "tftp_data_fuzz"
#include "harness.h"

// The file's bytes: a pattern that differs from block to block (so a block sent for another
// differs), made once; each transfer copies its size of it into a buffer of exactly that size,
// so ASan catches any read past the file.
#define MAX_SIZE (65535u * 4)
static uint8_t pattern[MAX_SIZE];
static void make_pattern(void) {
  for (uint32_t i = 0; i < MAX_SIZE; i++) pattern[i] = (uint8_t)(i * 131 + (i >> 9));
}

/** Reads every datagram the server sent and checks it. */
static void drain_client(int fd, const run_t *r, const uint8_t *oack, size_t oack_len) {
  const xfer_t *t = r->t;
  static uint8_t pkt[70000];
  for (;;) {
    ssize_t n = recv(fd, pkt, sizeof pkt, MSG_DONTWAIT);
    if (n < 0) return;
    CHECK(n >= 4, "a %zd-byte datagram", n);
    unsigned op = (unsigned)pkt[0] << 8 | pkt[1];
    if (op == 6) {
      CHECK((size_t)n == oack_len && memcmp(pkt, oack, oack_len) == 0, "the OACK sent differs from the one given");
    } else if (op == OP_DATA) {
      uint64_t block = (uint64_t)pkt[2] << 8 | pkt[3];
      CHECK(block >= 1 && block <= r->last_block, "DATA block %llu of %llu", (unsigned long long)block, (unsigned long long)r->last_block);
      uint64_t position = (block - 1) * t->blksize;
      size_t want = position >= t->size ? 0 : (size_t)(t->size - position < t->blksize ? t->size - position : t->blksize);
      CHECK((size_t)n - 4 == want, "DATA block %llu holds %zd bytes, expected %zu", (unsigned long long)block, n - 4, want);
      CHECK(memcmp(pkt + 4, pattern + position, want) == 0, "DATA block %llu differs from the file's bytes there", (unsigned long long)block);
    } else {
      CHECK(op == OP_ERROR && pkt[n - 1] == 0, "opcode %u from the server, or an ERROR without its NUL", op);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 6) return 0;
  xfer_t *t = calloc(1, sizeof *t);
  t->size = ((uint64_t)data[0] << 8 | data[1]) * (1 + data[2] % 4);
  t->blksize = 8 + (((unsigned)data[3] << 8 | data[4]) % 1461);
  t->windowsize = 1 + data[5] % MAX_WINDOW;
  int flags = size > 6 ? data[6] : 0;
  const uint8_t *in = data + 7;
  size_t in_len = size > 7 ? size - 7 : 0;
  t->rto = 1000;
  t->rto_ceiling = 2000;
  t->min_ms = 0; /* a duplicate ACK is answered at once: no wall clock in the outcome */
  t->retries = 3;
  t->file = -1;

  if (pattern[1] == 0) make_pattern();
  uint8_t *content = malloc(t->size + 1);
  memcpy(content, pattern, t->size);
  int short_file = 0;
  if (flags & 2) {
    // File source; with bit 4 the file is shorter than promised (changed while being sent).
    t->file = memfd_create("tftp_data_fuzz", MFD_CLOEXEC);
    size_t len = (size_t)t->size;
    if ((flags & 4) && len > 0) len = len / 2, short_file = 1;
    CHECK(write(t->file, content, len) == (ssize_t)len, "write");
    t->buf = malloc((size_t)t->windowsize * t->blksize);
  } else {
    t->data = content;
  }
  uint8_t oack[64];
  size_t oack_len = 0;
  if (flags & 1) {
    oack_len = (size_t)snprintf((char *)oack + 2, sizeof oack - 2, "blksize%c%u%c", 0, t->blksize, 0) + 2;
    oack[0] = 0, oack[1] = 6;
    t->oack = malloc(oack_len);
    memcpy(t->oack, oack, oack_len);
    t->oack_len = oack_len;
  }
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
  int big = 4 << 20;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  t->sock = sv[0];

  // As run_transfer starts a transfer.
  run_t *r = calloc(1, sizeof *r);
  r->t = t;
  r->spin_backoff = 1;
  r->last_block = t->size / t->blksize + 1;
  r->next = 1;
  if (t->oack) {
    r->in_oack = 1;
    send_oack(r);
  } else {
    pump(r);
  }
  arm(r, now_ms());
  drain_client(sv[1], r, oack, oack_len);

  // The client's side: [length][bytes] per datagram; length 255 is a retransmission timeout.
  size_t i = 0;
  while (!r->ended && i < in_len) {
    size_t n = in[i++];
    if (n == 255) {
      on_timeout(r);
    } else {
      if (n > in_len - i) n = in_len - i;
      on_message(r, in + i, (ssize_t)n);
      i += n;
    }
    drain_client(sv[1], r, oack, oack_len);
    CHECK(r->acked <= r->last_block, "acked %llu past the last block %llu", (unsigned long long)r->acked, (unsigned long long)r->last_block);
    CHECK(r->in_oack || r->ended || r->acked <= r->sent, "acked %llu past sent %llu", (unsigned long long)r->acked, (unsigned long long)r->sent);
    CHECK(r->sent <= r->last_block && r->next <= r->last_block + 1, "sent %llu / next %llu past the last block %llu", (unsigned long long)r->sent, (unsigned long long)r->next, (unsigned long long)r->last_block);
  }
  if (r->ended && t->status == ST_DONE) CHECK(r->acked >= r->last_block && !short_file, "done at ACK %llu of %llu", (unsigned long long)r->acked, (unsigned long long)r->last_block);
  if (r->ended && t->status == ST_FAILED) CHECK(short_file || t->code == ECONNREFUSED, "failed (%s) with the whole file there", t->message);

  free(r);
  close(sv[1]);
  free_xfer(NULL, t);
  free(content);
  return 0;
}
