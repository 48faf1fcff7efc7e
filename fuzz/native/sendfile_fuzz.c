// libFuzzer harness for the /os route's sendfile worker step (src/platforms/native/sendfile.c,
// included whole so its static functions are callable): a file of fuzzer-chosen size and
// bytes, a range of it, a Unix stream socket with a small send buffer so step() meets
// EAGAIN and resumes. Checks: the transfer completes once, sends exactly the range (or what
// the file holds of it, then fails with EIO: sendfile(2) returns 0 at end of file), and the
// bytes that arrive are the file's.
#define _GNU_SOURCE
#include "../../src/platforms/native/sendfile.c"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

static int completions;

napi_status napi_call_threadsafe_function(napi_threadsafe_function func, void *data, napi_threadsafe_function_call_mode mode) {
  (void)func, (void)data, (void)mode;
  completions++;
  return napi_ok;
}

napi_status napi_release_threadsafe_function(napi_threadsafe_function func, napi_threadsafe_function_release_mode mode) {
  (void)func, (void)mode;
  return napi_ok;
}

#define HARNESS "sendfile_fuzz"
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 6) return 0;
  // Header: offset (u16), length (u16), send buffer size step, file length step.
  uint64_t offset = (uint64_t)data[0] << 8 | data[1];
  uint64_t length = (uint64_t)data[2] << 8 | data[3];
  int sndbuf = 1024 * (1 + data[4] % 64);
  size_t file_len = (size - 6) * (1 + data[5] % 16);
  const uint8_t *body = data + 6;
  size_t body_len = size - 6;

  uint8_t *content = malloc(file_len + 1);
  for (size_t i = 0; i < file_len; i++) content[i] = body_len ? (uint8_t)(body[i % body_len] + i / body_len) : 0;
  int file = memfd_create("sendfile_fuzz", MFD_CLOEXEC);
  CHECK(file >= 0, "memfd_create: %s", strerror(errno));
  CHECK(write(file, content, file_len) == (ssize_t)file_len, "write");
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  CHECK(epfd >= 0, "epoll_create1");

  transfer_t *t = calloc(1, sizeof *t);
  t->sock = sv[0];
  t->file = file;
  t->offset = (off_t)offset;
  t->remaining = length;
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = t};
  CHECK(epoll_ctl(epfd, EPOLL_CTL_ADD, sv[0], &ev) == 0, "epoll_ctl");

  uint8_t *got = malloc(length + 1);
  size_t received = 0;
  completions = 0;
  for (int turns = 0; completions == 0; turns++) {
    CHECK(turns < 100000, "no completion after %d turns", turns);
    step(t, epfd);
    for (;;) {
      ssize_t n = recv(sv[1], got + received, length + 1 - received, MSG_DONTWAIT);
      if (n <= 0) break;
      received += (size_t)n;
      CHECK(received <= length, "more bytes than the range: %zu of %llu", received, (unsigned long long)length);
    }
  }
  for (;;) {
    ssize_t n = recv(sv[1], got + received, length + 1 - received, MSG_DONTWAIT);
    if (n <= 0) break;
    received += (size_t)n;
  }
  CHECK(completions == 1, "%d completions", completions);
  uint64_t available = offset >= file_len ? 0 : file_len - offset;
  uint64_t expect = length < available ? length : available;
  if (length <= available) CHECK(t->err == 0, "err %d for a range inside the file", t->err);
  else CHECK(t->err == EIO, "err %d for a range past the end of the file (EIO expected)", t->err);
  CHECK(t->sent == expect && received == expect, "sent %llu, received %zu, expected %llu", (unsigned long long)t->sent, received, (unsigned long long)expect);
  CHECK(expect == 0 || memcmp(got, content + offset, expect) == 0, "bytes differ from the file's");

  close(epfd);
  close(sv[0]);
  close(sv[1]);
  close(file);
  free(t);
  free(got);
  free(content);
  return 0;
}
