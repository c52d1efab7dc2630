#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets of libpyfalco (clang, -fsanitize=fuzzer,address,undefined):
#   build/fuzz/fuzz_<target>, one per tools/fuzz/c/fuzz_<target>.c
# libpyfalco's sources are compiled into the targets with the same sanitizers (the eBPF engine
# as its stub: the targets exercise capture files, not the kernel).
# Usage: tools/fuzz/c/build.sh [target...]     (default: every target)
# Run one: build/fuzz/fuzz_scap_reader tools/fuzz/corpus/scap_reader   (or tools/fuzz/run)
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$PWD
out=$root/build/fuzz
obj=$out/obj
mkdir -p "$obj"
CC=${CC:-clang}
san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
cflags=(-g -O1 -std=gnu11 -D_GNU_SOURCE -DPYFALCO_VERSION='"fuzz"' -DSCAP_GZ_BUFFER=8192 -Wall -Wno-unused-parameter
        -I"$root/libpyfalco/include" -I"$root/libpyfalco/src" -I"$root/driver/abi")

srcs=("$root"/libpyfalco/src/*.c "$root/driver/abi/event_table.c")
objs=()
for s in "${srcs[@]}"; do
    o=$obj/$(basename "${s%.c}").o
    if [[ ! -f $o || $s -nt $o || $0 -nt $o ]] || find "$root/libpyfalco/src" "$root/driver/abi" -name '*.h' -newer "$o" | grep -q .; then
        "$CC" "${cflags[@]}" "${san[@]}" -fsanitize=fuzzer-no-link -c "$s" -o "$o"
    fi
    objs+=("$o")
done

targets=("$@")
if ((${#targets[@]} == 0)); then
    for f in "$root"/tools/fuzz/c/fuzz_*.c; do
        t=$(basename "${f%.c}")
        targets+=("${t#fuzz_}")
    done
fi
for t in "${targets[@]}"; do
    "$CC" "${cflags[@]}" "${san[@]}" -fsanitize=fuzzer "$root/tools/fuzz/c/fuzz_$t.c" "${objs[@]}" -lz \
        -o "$out/fuzz_$t"
    echo "built $out/fuzz_$t"
done
