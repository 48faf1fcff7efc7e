// What the libFuzzer harnesses share: a property check that names the harness and aborts
// (libFuzzer then saves the input as a crash, like a sanitizer report).
#ifndef FLEETBOOT_FUZZ_HARNESS_H
#define FLEETBOOT_FUZZ_HARNESS_H
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond, ...)                                  \
  do {                                                    \
    if (!(cond)) {                                        \
      fprintf(stderr, "%s: ", HARNESS);                   \
      fprintf(stderr, __VA_ARGS__);                       \
      fputc('\n', stderr);                                \
      abort();                                            \
    }                                                     \
  } while (0)
#endif
