#!/usr/bin/env bash
# Builds the native addons' libFuzzer harnesses (fuzz/native/*_fuzz.c) with AddressSanitizer
# and UndefinedBehaviorSanitizer (clang from Debian: clang, libclang-rt-14-dev). Every UBSan
# report aborts (-fno-sanitize-recover), so libFuzzer counts it as a crash.
#   bash fuzz/native/build.sh OUTDIR      -> OUTDIR/dhcp_io_fuzz, tftp_data_fuzz, sendfile_fuzz
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
# node-gyp builds against the same headers (binding.gyp, nodedir /usr).
node_include=$(dirname "$(command -v node)")/../include/node
[ -f "$node_include/node_api.h" ] || node_include=/usr/include/node
for src in "$here"/*_fuzz.c; do
  name=$(basename "$src" .c)
  clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
    -Wall -Wextra -Wno-unused-function -Wno-unused-parameter -I"$node_include" -DNODE_GYP_MODULE_NAME=fuzz \
    "$src" "$here/napi_unreachable.c" -lm -lpthread -o "$out/$name"
done
