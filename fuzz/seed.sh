#!/usr/bin/env bash
# Seed the fuzz corpus with the real dumps under 4 MB, then run: bash fuzz/seed.sh && \
#   RUSTC_BOOTSTRAP=1 cargo fuzz run dump_reader -- -max_total_time=600 -max_len=4194304
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/dump_reader
find ../../shared/corpus/real -name '*.dmp' -size -4M -exec cp {} corpus/dump_reader/ \;
# Larger dumps (the legacy USERDU64 full dump among them) seed with their first megabyte: the
# headers and tables are at the start, and a cut file is input the readers must take anyway.
find ../../shared/corpus/real -name '*.dmp' -size +4M -exec sh -c \
    'head -c 1048576 "$1" > "corpus/dump_reader/$(basename "$1" .dmp)-head.dmp"' _ {} \;
