#!/usr/bin/env bash
# The main job on the embedded default: installs dependencies, builds, prepares tinyshakespeare
# as llm.c token shards with our own tokenizer, and trains the `tiny` config (CPU when there is
# no usable GPU). Extra arguments go to `mousse train`, e.g. --set steps=50.
#
# Inputs, all optional:
#   MOUSSE_GPT2_DIR        folder with OpenAI's encoder.json and vocab.bpe (else data/gpt2, else
#                          the shared test data, else downloaded into data/gpt2 and sha256-checked:
#                          scripts/get-gpt2-vocab.sh)
#   MOUSSE_TINYSHAKESPEARE tinyshakespeare input.txt (else the shared test data's copy,
#                          ../shared/data/tinyshakespeare/input.txt, else downloaded)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

bash scripts/setup-deps.sh
MOUSSE_TARGETS="mousse mousse-tokenize" bash scripts/build.sh

DATA="$ROOT/data/tinyshakespeare"
if ! ls "$DATA"/tiny_shakespeare_val_*.bin >/dev/null 2>&1; then
  VOCAB_DIR="$(bash scripts/get-gpt2-vocab.sh "$ROOT/data/gpt2")"
  INPUT="${MOUSSE_TINYSHAKESPEARE:-}"
  if [ -z "$INPUT" ] && [ -f "$ROOT/../shared/data/tinyshakespeare/input.txt" ]; then
    INPUT="$ROOT/../shared/data/tinyshakespeare/input.txt"
  fi
  if [ -z "$INPUT" ]; then
    mkdir -p "$DATA"
    INPUT="$DATA/input.txt"
    echo "[quickstart] downloading tinyshakespeare"
    curl -fsSL -o "$INPUT" https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
  fi
  echo "[quickstart] tokenizing $INPUT into $DATA (llm.c's tinyshakespeare procedure)"
  # Sections split on blank lines, each prefixed with <|endoftext|>; the first 32,768 tokens
  # are the validation shard.
  build/mousse-tokenize "$INPUT" --out "$DATA" --name tiny_shakespeare --vocab "$VOCAB_DIR" \
    --split-on '\n\n' --val-tokens 32768
fi

echo "[quickstart] training configs/tiny.json"
exec build/mousse train -c configs/tiny.json "$@"
