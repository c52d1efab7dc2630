#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Source coverage of the C fuzz targets over a corpus: builds each target with clang's
# source-based coverage (no sanitizers; build/fuzz/cov/), runs it once over every input, and
# prints llvm-cov's per-file report for libpyfalco's capture-file code.
# Usage: tools/fuzz/c/coverage.sh TARGET [CORPUS_DIR...]
#        (default corpus: tools/fuzz/corpus/TARGET and build/fuzz/corpus/TARGET when present)
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$PWD
t=${1:?usage: coverage.sh TARGET [CORPUS_DIR...]}
shift
dirs=("$@")
if ((${#dirs[@]} == 0)); then
    dirs=("$root/tools/fuzz/corpus/$t")
    [[ -d $root/build/fuzz/corpus/$t ]] && dirs+=("$root/build/fuzz/corpus/$t")
fi
out=$root/build/fuzz/cov
mkdir -p "$out"
CC=${CC:-clang}
flags=(-g -O1 -std=gnu11 -D_GNU_SOURCE -DPYFALCO_VERSION='"cov"' -DSCAP_GZ_BUFFER=8192 -Wno-unused-parameter
       -fprofile-instr-generate -fcoverage-mapping -fsanitize=fuzzer
       -I"$root/libpyfalco/include" -I"$root/libpyfalco/src" -I"$root/driver/abi")
"$CC" "${flags[@]}" "$root/tools/fuzz/c/fuzz_$t.c" "$root"/libpyfalco/src/*.c "$root/driver/abi/event_table.c" -lz \
    -o "$out/fuzz_$t"
rm -f "$out/$t".profraw
files=()
for d in "${dirs[@]}"; do
    while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$d" -maxdepth 1 -type f -print0)
done
# -runs=0 with files: each input once; in chunks (argument list limits)
for ((i = 0; i < ${#files[@]}; i += 500)); do
    LLVM_PROFILE_FILE="$out/$t.%p.profraw" "$out/fuzz_$t" -runs=0 "${files[@]:i:500}" >/dev/null 2>&1 || true
done
llvm-profdata merge -sparse "$out/$t".*.profraw -o "$out/$t.profdata"
rm -f "$out/$t".*.profraw
echo "fuzz_$t: ${#files[@]} inputs"
llvm-cov report "$out/fuzz_$t" -instr-profile="$out/$t.profdata" \
    "$root"/libpyfalco/src/scap_reader.c "$root"/libpyfalco/src/scap_convert.c "$root"/libpyfalco/src/scap_writer.c \
    "$root"/libpyfalco/src/engine_replay.c "$root"/libpyfalco/src/capture.c
