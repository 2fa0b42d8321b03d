#!/usr/bin/env bash
# Seed the fuzz corpora from the real corpus (dumps under 4 MB, .sym files under 120 kB, PDBs
# under 2 MB), then run a target, e.g.:
#   bash fuzz/seed.sh && cd fuzz && cargo +nightly fuzz run -O -s none dump_reader corpus/dump_reader \
#     -- -max_total_time=600 -max_len=4194304
#   cargo +nightly fuzz run -O -s none sym_file corpus/sym_file -- -max_len=131072
#   cargo +nightly fuzz run -O -s none pdb_file corpus/pdb_file -- -max_len=2097152
#   cargo +nightly fuzz run -O -s none analysis corpus/analysis -- -max_len=4096
#   cargo +nightly fuzz run -O -s none pe_image corpus/pe_image -- -max_len=262144
# -O keeps the release arithmetic of the dependencies (see Cargo.toml).
set -euo pipefail
cd "$(dirname "$0")"
real=../../shared/corpus/real
mkdir -p corpus/dump_reader corpus/sym_file corpus/pdb_file corpus/analysis corpus/pe_image
find "$real" -type f -name '*.dmp' -size -4M -exec cp {} corpus/dump_reader/ \;
# Larger dumps (the legacy USERDU64 full dump among them) seed with their first megabyte: the
# headers and tables are at the start, and a cut file is input the readers must take anyway.
find "$real" -type f -name '*.dmp' -size +4M -exec sh -c \
    'head -c 1048576 "$1" > "corpus/dump_reader/$(basename "$1" .dmp)-head.dmp"' _ {} \;
find "$real" -type f -name '*.sym' -size -120k | while read -r f; do
  cp "$f" "corpus/sym_file/$(echo "$f" | md5sum | cut -c1-12).sym"
done
find "$real" -type f -name '*.pdb' -size -2M | while read -r f; do
  cp "$f" "corpus/pdb_file/$(echo "$f" | md5sum | cut -c1-12).pdb"
done
# PE images: the fixtures' programs and DLLs (clang + lld) and Wine's own PE DLLs (MinGW),
# the first 256 kB of each: headers, section table and the directories near the start.
for f in ../target/fixtures/current/*.exe ../target/fixtures/current/*.dll \
    /usr/lib/x86_64-linux-gnu/wine/x86_64-windows/{kernelbase,ntdll,user32,msvcrt}.dll; do
  [ -f "$f" ] && head -c 262144 "$f" > "corpus/pe_image/$(basename "$f")"
done
true
