#!/usr/bin/env bash
# Issue 7 on a GPU machine, from a copy of the repository (not installed): the tiny model on 64 samples, then the
# LLaVA-NeXT-Video-7B architecture with random weights on 16 samples, each in one process and under
# torchrun --nproc-per-node <visible GPUs>, with the kill-and-resume test. Reports: runs/scaling-*/report.md, and
# both together in runs/scaling-report.md (paste into BENCHMARKS.md).
#
#   bash scripts/multi_gpu_scaling.sh            # every visible GPU
#   NPROC=2 bash scripts/multi_gpu_scaling.sh    # two of them
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
PYTHON=${PYTHON:-python3}
nproc_args=()
[ -n "${NPROC:-}" ] && nproc_args=(--nproc "$NPROC")
status=0
"$PYTHON" -m divprune_video bench scaling --model tiny --workdir runs/scaling-tiny "${nproc_args[@]}" || status=1
"$PYTHON" -m divprune_video bench scaling --model random-7b --workdir runs/scaling-7b "${nproc_args[@]}" || status=1
cat runs/scaling-tiny/report.md runs/scaling-7b/report.md > runs/scaling-report.md 2>/dev/null
echo "reports: runs/scaling-tiny/report.md runs/scaling-7b/report.md -> runs/scaling-report.md (exit $status)" >&2
exit $status
