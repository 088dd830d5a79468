#!/usr/bin/env bash
# The GPU checks in one call of the device machine (docs/benchmarks.md): the CUDA tests, then the
# sampler, training-step and whole-round benchmarks on amused-256-random in bf16. Logs and JSON go to $OUT.
# The machine's python3 has torch/transformers/peft; diffusers, open_clip and pydantic travel as wheels in .whl/
# (docs/benchmarks.md says how to fetch them). The parts take longer than one call may run (600 s): split them,
#   PARTS="tests sampling" bench/gpu.sh      then      PARTS="train_step round" bench/gpu.sh
# Every part prints only when it finishes: never pipe this script (a timeout kills the pipe and its output);
# read the logs under $OUT.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader
python3 -c "import sys, torch, diffusers, transformers, peft, open_clip; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'open_clip', open_clip.__version__)"
step() { local name=$1 limit=$2; shift 2; echo "== $name (limit ${limit}s)"; local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; local rc=$?; tail -n 25 "$OUT/$name.log"; echo "== $name rc=$rc in $((SECONDS - t0)) s"; }
for part in ${PARTS:-tests sampling train_step round}; do case $part in
  tests) step cuda_tests 170 python3 -m pytest -q -p no:cacheprovider -rfEs tests/test_cuda.py -s ;;
  sampling) step sampling ${SAMPLING_LIMIT:-150} python3 bench/sampling.py --preset amused-256-random --device cuda --batch 8 --steps 12 --repeats 3 --candidate-path --json "$OUT/sampling.json" ;;
  train_step) step train_step 300 python3 bench/train_step.py --preset amused-256-random --device cuda --batch 8 --steps 15 --warmup 5 --json "$OUT/train_step.json" ;;
  train_ref) step train_ref 40 python3 bench/train_step.py --variant reference-lora --preset amused-256-random --device cuda --batch 8 --steps 15 --warmup 5 --precision bf16 ;;
  train_ours) step train_ours 110 python3 bench/train_step.py --variant ours-styledrop --preset amused-256-random --device cuda --batch 8 --steps 15 --warmup 5 --precision bf16 --fast auto ;;
  round) step round ${ROUND_LIMIT:-240} python3 bench/round.py --preset amused-256-random --device cuda --steps 1000 --batch 8 --candidates 128 --candidate-batch 16 --reference-candidates 8 --no-batched-fp32 --scorer ViT-L-14/random --repeats 1 --json "$OUT/round.json" ;;
esac; done
