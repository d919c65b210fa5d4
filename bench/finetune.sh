#!/usr/bin/env bash
# Fine-tuning the base versus training from scratch, on novels the base never saw
# (issue 19). Run from the repository root after models/base exists; each run is timed.
#   bash bench/finetune.sh ft|scratch|both NOVEL...   (e.g. both rulinwaishi jinghuayuan)
# Needs corpus/NOVEL.seg.txt (segment --to-simplified). Writes models/bench/ft_NOVEL and
# models/bench/scratch_NOVEL (git-ignored) and prints one JSON line per run.
set -euo pipefail
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
FT_MINUTES=${FT_MINUTES:-11}        # fine-tuning epochs; loading and fitting take the rest of 15 minutes
SCRATCH_MINUTES=${SCRATCH_MINUTES:-50}
mkdir -p models/bench
report() {  # name model seconds
  python - "$@" <<'PY'
import json, sys
from wordlstm.evaluate import evaluate_file
name, model, seconds, seg = sys.argv[1:5]
r = evaluate_file(seg, model)
h = json.load(open(f"{model}/history.json"))["epochs"]
print(json.dumps({"run": name, "seconds": float(seconds), "epochs": len(h),
                  "bits_per_char": round(r["bits_per_char"], 4),
                  "bits_per_char_plain": round(r.get("bits_per_char_plain", r["bits_per_char"]), 4)}))
PY
}
phase=$1; shift
for novel in "$@"; do
  seg=corpus/$novel.seg.txt
  if [ "$phase" != scratch ]; then
  t0=$(date +%s)
  wordlstm train "$seg" --from models/base -o models/bench/ft_$novel --time-limit "$FT_MINUTES" \
      --overwrite
  t1=$(date +%s)
  report ft_$novel models/bench/ft_$novel $((t1 - t0)) "$seg"
  fi
  [ "$phase" = ft ] && continue
  t0=$(date +%s)
  wordlstm train-vectors "$seg" -o corpus/$novel.vectors -q
  wordlstm train "$seg" --vectors corpus/$novel.vectors -o models/bench/scratch_$novel --carry \
      --time-limit "$SCRATCH_MINUTES" --overwrite
  t1=$(date +%s)
  report scratch_$novel models/bench/scratch_$novel $((t1 - t0)) "$seg"
done
