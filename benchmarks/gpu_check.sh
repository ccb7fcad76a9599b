#!/usr/bin/env bash
# The course's GPU check, one short prepared script for a machine with a GPU (about 10 minutes):
#   1. every chapter under nbval with its runs trained afresh on the GPU (quick mode), and
#   2. one full-mode training run (the published ProtoNet setting, truncated to FULL_STEPS), evaluated.
# Runs trained on a GPU differ from the committed CPU runs by float noise, which changes printed
# digits, so nbval runs with --nbval-lax here: every cell must run, and the chapters' asserts
# (learning floors, the claims the text makes) judge the results. On the CPU, `make test`
# compares every output exactly. The committed runs are never touched: training goes to a
# scratch MLCOURSE_RUNS folder.
# Usage: MLCOURSE_DATA=/path/to/data bash benchmarks/gpu_check.sh [FULL_STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
FULL_STEPS="${1:-4000}"
PY="${PY:-.venv/bin/python}"
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
report="$OUT/gpu-check.md"
export MLCOURSE_QUIET=1 MLCOURSE_RUNS="$(mktemp -d)"
card="$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU found")"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'torch sees no CUDA device')"

{
  echo "# GPU check"
  echo
  echo "Card: $card; torch $("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)'); $(date -u +%F)."
  echo "Command: \`bash benchmarks/gpu_check.sh $FULL_STEPS\`"
  echo
  echo "## Chapters under nbval (--nbval-lax), runs trained on the GPU in quick mode"
  echo
  echo "| notebook | result | wall time (s) |"
  echo "|---|---|---|"
} > "$report"
for nb in notebooks/*.ipynb; do
  start=$(date +%s)
  if "$PY" -m pytest -q -p no:cacheprovider -o addopts="" --nbval-lax --nbval-current-env "$nb" > "$OUT/gpu-nbval-$(basename "$nb" .ipynb).log" 2>&1
  then result=passed; else result=FAILED; fi
  echo "| $(basename "$nb") | $result | $(( $(date +%s) - start )) |" >> "$report"
done
echo >> "$report"
echo "Runs trained on the GPU (name: steps, wall time, device):" >> "$report"
"$PY" - >> "$report" <<'PYEOF'
from mlcourse import runs
for path in sorted(runs.runs_dir().glob("*.pt")):
    made = runs.load_run(path.stem, path, device="cpu").made
    print(f"- {path.stem}: {made['steps']} steps, {made['wall_s']:.0f} s on {made['device']}")
PYEOF

ckpt="$MLCOURSE_RUNS/protonet-full-check.pt"
start=$(date +%s)
"$PY" -m mlcourse train --method protonet --full --steps "$FULL_STEPS" --checkpoint "$ckpt" > "$OUT/gpu-full-train.log" 2>&1
train_s=$(( $(date +%s) - start ))
{
  echo
  echo "## Full mode: ProtoNet, published settings (60-way 5-query, Adam 1e-3 halved every 2000), $FULL_STEPS of 20000 steps"
  echo
  echo "Training: $train_s s. Test accuracy, vinyals test classes, 600 episodes, 95% CI:"
  echo
  for setting in "5 1" "5 5" "20 1" "20 5"; do
    set -- $setting
    echo "- $("$PY" -m mlcourse evaluate --checkpoint "$ckpt" --n-way "$1" --k-shot "$2" --n-query $([ "$1" -le 5 ] && echo 15 || echo 5) 2>/dev/null | tail -1)"
  done
} >> "$report"
cat "$report"
