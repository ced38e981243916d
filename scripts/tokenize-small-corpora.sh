#!/usr/bin/env bash
# The data of the small-scale replication (scripts/replicate-small.sh, scripts/replicate-gpu): the
# web-like corpora of the shared data (CORPORA/*.jsonl: news, web text, speeches) tokenized by our
# GPT-2 tokenizer into llm.c shards OUT/small_val_000000.bin (the first 131,072 tokens) and
# OUT/small_train_000001.bin (the rest).
#
#   scripts/tokenize-small-corpora.sh MOUSSE_TOKENIZE CORPORA_DIR VOCAB_DIR OUT_DIR
#
# OUT/inputs.txt records what the shards were made from (each corpus's name and size, the
# validation size); it is written last, so when it matches, the shards are complete and nothing is
# done. Otherwise the small_* shards are (re)written (--overwrite: only shards of that name).
set -euo pipefail
TOKENIZE=${1:?usage: tokenize-small-corpora.sh MOUSSE_TOKENIZE CORPORA_DIR VOCAB_DIR OUT_DIR}
CORPORA=${2:?usage: tokenize-small-corpora.sh MOUSSE_TOKENIZE CORPORA_DIR VOCAB_DIR OUT_DIR}
VOCAB=${3:?usage: tokenize-small-corpora.sh MOUSSE_TOKENIZE CORPORA_DIR VOCAB_DIR OUT_DIR}
OUT=${4:?usage: tokenize-small-corpora.sh MOUSSE_TOKENIZE CORPORA_DIR VOCAB_DIR OUT_DIR}
VAL_TOKENS=131072

[ -x "$TOKENIZE" ] || { echo "tokenize-small-corpora: $TOKENIZE: not an executable (build mousse-tokenize first: scripts/build.sh)" >&2; exit 1; }
shopt -s nullglob
inputs=("$CORPORA"/*.jsonl)
shopt -u nullglob
[ ${#inputs[@]} -gt 0 ] || { echo "tokenize-small-corpora: no *.jsonl corpora in $CORPORA" >&2; exit 1; }

want="val_tokens $VAL_TOKENS"$'\n'
for f in "${inputs[@]}"; do want+="$(basename "$f") $(stat -c %s "$f")"$'\n'; done
if [ -f "$OUT/inputs.txt" ] && [ "$(cat "$OUT/inputs.txt")"$'\n' = "$want" ] \
   && ls "$OUT"/small_train_*.bin >/dev/null 2>&1; then
  echo "== $OUT: already tokenized from the same corpora (inputs.txt); nothing to do"
  exit 0
fi
echo "== tokenizing ${inputs[*]} into $OUT"
mkdir -p "$OUT"
rm -f "$OUT/inputs.txt"
"$TOKENIZE" "${inputs[@]}" --out "$OUT" --name small --val-tokens "$VAL_TOKENS" --vocab "$VOCAB" \
  --overwrite --quiet
printf '%s' "$want" > "$OUT/inputs.txt.tmp"
mv "$OUT/inputs.txt.tmp" "$OUT/inputs.txt"
