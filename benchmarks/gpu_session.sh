#!/usr/bin/env bash
# What only a GPU can show, in one call on a lent GPU machine (benchmarks/RESULTS.md, "On a GPU"):
#   1. tests/train/test_cuda.py: bf16 head kernels at the real vocabulary, Liger, the sampler, a bf16 run on CUDA;
#   2. benchmarks/memory.py --device cuda: peak memory of the log-prob pass, 4 x (512 + 8,192) tokens of the
#      1.5B text preset's shape, chunked head vs full logits vs TRL;
#   3. benchmarks/gpu_step.py: bf16 step time and per-phase peaks of that model, chunked vs full.
# Each part has its own time limit, so one that hangs still leaves the others' figures. Logs go to $OUT
# (the device tool's folder) or runs/gpu_session.
#
#   bash benchmarks/gpu_session.sh            # on a machine with CUDA and this repo's dependencies
#   PARTS=step STEP_RESPONSE=512 bash benchmarks/gpu_session.sh   # one part, other settings
# On the H200 (2026-12-04) the parts took 32 s, 51 s and 220 s. With the HF engine a step of 1,024-token
# responses takes about a minute, so keep STEP_RESPONSE small or raise STEP_LIMIT.
# Packages the GPU image lacks travel as wheels in .whl/ (installed into /tmp/site) and pure-Python
# folders in .gpu/site/; .gpu/r1 holds the preset model's config and tokenizer. Prepared on the CPU machine:
#   .venv/bin/python -c "from pathlib import Path; from tests.real_models import write_model_folder, R1_DISTILL;
#     write_model_folder(R1_DISTILL, Path('.gpu/r1'))"
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 -d .whl \
#     datasets dill multiprocess math-verify latex2sympy2_extended antlr4-python3-runtime mathruler trl liger-kernel
#   mkdir -p .gpu/site && cp -r .venv/lib/python3.*/site-packages/pylatexenc .gpu/site/   # sdist only on PyPI
# (both folders in .git/info/exclude, sent with the device tool's `carry`).
set -u
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=${OUT:-runs/gpu_session}
mkdir -p "$OUT"
PY=${PY:-python3}
EXTRA=""
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  EXTRA=/tmp/site
fi
[ -d .gpu/site ] && EXTRA="$EXTRA:$PWD/.gpu/site"
export PYTHONPATH="$PWD${EXTRA:+:$EXTRA}"

{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch, transformers, sys; print(sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, 'transformers', transformers.__version__)"
  $PY -c "import flash_attn" 2>&1 | tail -1
} 2>&1 | tee "$OUT/env.log"

part() {  # part NAME SECONDS CMD...: run CMD under a time limit, its output to $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  echo "== $name ($(date -u +%T), limit ${limit}s): $*" | tee "$OUT/$name.log"
  local t0=$SECONDS
  timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$OUT/$name.log"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s" | tee -a "$OUT/$name.log"
}

[[ ${PARTS:-tests,memory,step} == *tests* ]] && part tests "${TESTS_LIMIT:-120}" $PY -m pytest tests/train/test_cuda.py -q -s -rs -p no:cacheprovider
[[ ${PARTS:-tests,memory,step} == *memory* ]] && part memory "${MEMORY_LIMIT:-150}" $PY benchmarks/memory.py --device cuda --dtype bfloat16 --hidden 1536 \
  --layers 28 --heads 12 --kv-heads 2 --intermediate 8960 --tie-embeddings 0 --batch 4 --prompt 512 \
  --response 8192 --gradient-checkpointing 1 --repeats 2
[[ ${PARTS:-tests,memory,step} == *step* ]] && part step "${STEP_LIMIT:-270}" $PY benchmarks/gpu_step.py --tokenizer .gpu/r1 --out /tmp/gpu_step \
  --response "${STEP_RESPONSE:-256}" --steps 2 --methods chunked,full
