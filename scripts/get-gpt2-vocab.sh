#!/usr/bin/env bash
# Locate or fetch OpenAI's GPT-2 vocabulary (encoder.json + vocab.bpe) and print its directory.
#
#   scripts/get-gpt2-vocab.sh [DEST]
#
# The same order as the programs' own lookup (mousse sample, mousse-tokenize; docs/data.md):
# $MOUSSE_GPT2_DIR, then DEST if it already holds both files (default: data/gpt2 in the
# repository), then the shared test data ../shared/data/gpt2 next to the repository; otherwise
# both files are downloaded from OpenAI's official location into DEST. Every file is checked
# against its known sha256 before the directory is printed; a mismatch is an error. Only the
# directory goes to stdout.
set -euo pipefail

ENCODER_SHA=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
VOCAB_SHA=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
BASE_URL=https://openaipublic.blob.core.windows.net/gpt-2/encodings/main

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$repo/data/gpt2}"

sha_ok() {  # DIR -> 0 when both files exist with the right hashes
  local d="$1"
  [[ -f "$d/encoder.json" && -f "$d/vocab.bpe" ]] || return 1
  [[ "$(sha256sum "$d/encoder.json" | cut -d' ' -f1)" == "$ENCODER_SHA" ]] || return 2
  [[ "$(sha256sum "$d/vocab.bpe" | cut -d' ' -f1)" == "$VOCAB_SHA" ]] || return 2
}

check_dir() {  # DIR LABEL -> prints DIR and exits when usable; errors on a hash mismatch
  local d="$1" rc=0
  sha_ok "$d" || rc=$?
  if [[ $rc -eq 0 ]]; then
    (cd "$d" && pwd)
    exit 0
  elif [[ $rc -eq 2 ]]; then
    echo "get-gpt2-vocab: $2 $d holds encoder.json/vocab.bpe with the wrong sha256" >&2
    exit 1
  fi
}

if [[ -n "${MOUSSE_GPT2_DIR:-}" ]]; then
  check_dir "$MOUSSE_GPT2_DIR" "MOUSSE_GPT2_DIR"
  echo "get-gpt2-vocab: MOUSSE_GPT2_DIR=$MOUSSE_GPT2_DIR lacks encoder.json or vocab.bpe" >&2
  exit 1
fi
check_dir "$dest" "destination"
check_dir "$repo/../shared/data/gpt2" "shared test data"

mkdir -p "$dest"
for f in encoder.json vocab.bpe; do
  echo "get-gpt2-vocab: downloading $BASE_URL/$f" >&2
  if ! curl -fsSL --retry 3 -o "$dest/$f.tmp" "$BASE_URL/$f"; then
    rm -f "$dest/$f.tmp"
    echo "get-gpt2-vocab: download of $f failed (offline?); put encoder.json and vocab.bpe in $dest" \
         "or set MOUSSE_GPT2_DIR" >&2
    exit 1
  fi
  mv "$dest/$f.tmp" "$dest/$f"
done
rc=0
sha_ok "$dest" || rc=$?
if [[ $rc -ne 0 ]]; then
  echo "get-gpt2-vocab: downloaded files in $dest do not match the expected sha256" >&2
  exit 1
fi
(cd "$dest" && pwd)
