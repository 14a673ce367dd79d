#!/usr/bin/env bash
# benchmarks/gpu_check.sh: the GPU checks of the training loop (issue 14), as one prepared script.
#
#   NOT YET RUN ON A GPU. It was written, and smoke-tested with --cpu, on a machine without one;
#   the first GPU run is its first real run. Read its summary with that in mind.
#
# Usage (from anywhere; it works in the repository root):
#   benchmarks/gpu_check.sh                  # on a CUDA machine: under ten minutes on one H200
#   benchmarks/gpu_check.sh --cpu            # dry run on the CPU: tiny sizes, CUDA-only parts skipped (says which)
#   GPU_CHECK_DEVICE=cpu benchmarks/gpu_check.sh      # the same as --cpu
#
# What it checks, each with one summary line (PASS, FAIL or SKIP) at the end:
#   1. cuda-tests   pytest -m cuda (tests/training/test_training_cuda.py: bf16 autocast, channels-last
#                   checkpoints, statistics read in blocks, augmentation on the GPU, NCCL torchrun).
#   2. epoch-*      `wpgdkit train` with bf16 autocast (--amp) on WRN-16-10, PGD-8, Fashion-MNIST padded to
#                   3x32x32, 2 epochs of STEPS_PER_EPOCH steps (200 steps in all), once with
#                   --memory-format contiguous and once with channels_last. The second epoch's time (the
#                   log's "seconds") is compared with 9 x (forward + backward) of the same model, batch,
#                   layout and precision per step (PGD-8 training = 8 attack steps + 1 training step):
#                   FAIL when epoch / that > GPU_CHECK_MAX_RATIO (default 1.10). An attack step's backward
#                   stops at the input (no weight gradients), so a lean loop comes in well below 1; hence a
#                   second, sharper reference, the bare work of a step: 8 x (eval forward + input gradient)
#                   + 1 x (training forward + backward + SGD step), and FAIL when epoch / bare >
#                   GPU_CHECK_MAX_BARE_RATIO (default 1.15: augmentation, copies, random starts and
#                   projections are extra work a hand loop does too). Both limits are first guesses.
#   3. layout       which layout was faster, and what --memory-format auto picks for this model and batch.
#   4. torchrun     torchrun --nproc_per_node 1: the process group's backend (nccl on a GPU, gloo on the CPU)
#                   and a short `wpgdkit train` through DistributedDataParallel.
# Exit status: 0 when no check failed (skips are not failures), 1 when one failed, 2 when it could not start.
#
# Needs nothing from outside the machine it runs on:
#   - Python: .venv in the repository if present (used as it is); otherwise `make venv`, which needs the
#     package index (or a local wheel mirror for torch).
#   - Fashion-MNIST, the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
#     t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz), looked for in $WPGDKIT_DATA_DIR (and its
#     fashion-mnist/ folder), ./data/fashion-mnist, ./data, then /usr/share/datasets/fashion-mnist (Debian's
#     dataset-fashion-mnist package puts them there). To carry them with a copy of the repository:
#         mkdir -p data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz data/fashion-mnist/
#     (about 30 MB; keep them out of commits).
#
# Settings (environment): GPU_CHECK_DEVICE (cuda|cpu), GPU_CHECK_OUT (folder for runs and logs; default a new
# temporary one, kept), GPU_CHECK_BATCH (128; cpu 2), GPU_CHECK_STEPS_PER_EPOCH (100; cpu 1),
# GPU_CHECK_MAX_RATIO (1.10), GPU_CHECK_MAX_BARE_RATIO (1.15), GPU_CHECK_STEP_TIMEOUT (seconds per command;
# 240, cpu 600).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)

DEVICE=${GPU_CHECK_DEVICE:-cuda}
for arg in "$@"; do
  case "$arg" in
    --cpu) DEVICE=cpu ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument $arg (use --cpu or --help)" >&2; exit 2 ;;
  esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "gpu_check: GPU_CHECK_DEVICE must be cuda or cpu, got $DEVICE" >&2; exit 2 ;; esac

if [ "$DEVICE" = cuda ]; then
  BATCH=${GPU_CHECK_BATCH:-128}; STEPS_PER_EPOCH=${GPU_CHECK_STEPS_PER_EPOCH:-100}; TIMEOUT=${GPU_CHECK_STEP_TIMEOUT:-240}
else
  BATCH=${GPU_CHECK_BATCH:-2}; STEPS_PER_EPOCH=${GPU_CHECK_STEPS_PER_EPOCH:-1}; TIMEOUT=${GPU_CHECK_STEP_TIMEOUT:-600}
fi
MAX_RATIO=${GPU_CHECK_MAX_RATIO:-1.10}
MAX_BARE_RATIO=${GPU_CHECK_MAX_BARE_RATIO:-1.15}
LIMIT=$((BATCH * STEPS_PER_EPOCH))
OUT=${GPU_CHECK_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/wpgdkit-gpu-check.XXXXXX")}
mkdir -p "$OUT" || exit 2
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}  # the deterministic CUDA tests need it

SUMMARY=()
FAILED=0
record() {  # record STATUS NAME DETAIL
  SUMMARY+=("$(printf '%-4s %-20s %s' "$1" "$2" "$3")")
  [ "$1" = FAIL ] && FAILED=1
  echo "== $1 $2: $3"
}

# --- the environment ------------------------------------------------------------------------------
if [ -x .venv/bin/python ]; then
  PY=$ROOT/.venv/bin/python
else
  echo "gpu_check: no .venv here; creating it with make venv (needs the package index)"
  make venv || { echo "gpu_check: make venv failed: create .venv (python -m venv .venv; pip install -e '.[test]')" >&2; exit 2; }
  PY=$ROOT/.venv/bin/python
fi
export DEVICE BATCH LIMIT STEPS_PER_EPOCH OUT ROOT
echo "gpu_check: device $DEVICE, batch $BATCH, $STEPS_PER_EPOCH steps per epoch, output in $OUT"
"$PY" - <<'PY' || { echo "gpu_check: $DEVICE is not usable here (use --cpu for the dry run)" >&2; exit 2; }
import os, torch
import wpgdkit
print(f"wpgdkit {wpgdkit.__version__}, torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}",
      f"({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
if os.environ["DEVICE"] == "cuda" and not torch.cuda.is_available():
    raise SystemExit(1)
PY

# --- Fashion-MNIST, padded to 3x32x32 (WRN-16-10's CIFAR input) -----------------------------------
NPZ=$OUT/fashion-mnist-32.npz
if ! "$PY" - <<'PY'; then
import os
from pathlib import Path

import numpy as np
import torch

from wpgdkit.datasets import load_tensors

root = Path(os.environ["ROOT"])
candidates = []
if os.environ.get("WPGDKIT_DATA_DIR"):
    candidates += [Path(os.environ["WPGDKIT_DATA_DIR"])]
candidates += [root / "data", root / "benchmarks" / "data", None]  # None: wpgdkit's own search (Debian's folder)
n_train = int(os.environ["LIMIT"]) * 1  # exactly the steps asked for
n_test = 256
last = None
for data_dir in candidates:
    try:
        x, y = load_tensors("fashion-mnist", "train", data_dir=data_dir, limit=n_train)
        xt, yt = load_tensors("fashion-mnist", "test", data_dir=data_dir, limit=n_test)
        break
    except Exception as exc:  # not there: try the next place
        last = exc
else:
    raise SystemExit(f"gpu_check: Fashion-MNIST not found ({last}); see the header of benchmarks/gpu_check.sh")


def padded(images: torch.Tensor) -> np.ndarray:
    # (N, 1, 28, 28) in [0, 1] -> (N, 3, 32, 32) uint8: 2 black pixels around, the grey channel three times.
    u8 = (images * 255).round().to(torch.uint8)
    return torch.nn.functional.pad(u8, (2, 2, 2, 2)).expand(-1, 3, -1, -1).contiguous().numpy()


np.savez(os.environ["OUT"] + "/fashion-mnist-32.npz", x_train=padded(x), y_train=y.numpy(), x_test=padded(xt),
         y_test=yt.numpy())
print(f"Fashion-MNIST: {len(y)} training images padded to 3x32x32 in {os.environ['OUT']}/fashion-mnist-32.npz")
PY
  echo "gpu_check: could not prepare the data" >&2
  exit 2
fi

# --- 1. the CUDA-marked tests ------------------------------------------------------------------------
echo "== 1. pytest -m cuda"
timeout "$((TIMEOUT * 2))" "$PY" -m pytest -q -p no:cacheprovider -m cuda tests 2>&1 | tee "$OUT/pytest-cuda.txt" | tail -n 25
rc=${PIPESTATUS[0]}
last_line=$(grep -E '(passed|failed|skipped|error|deselected)' "$OUT/pytest-cuda.txt" | tail -n 1)
if [ "$rc" -ne 0 ]; then
  record FAIL cuda-tests "pytest exit $rc: $last_line"
elif [ "$DEVICE" = cpu ] || ! grep -q passed <<<"$last_line"; then
  record SKIP cuda-tests "no GPU here, the CUDA tests skip: $last_line"
else
  record PASS cuda-tests "$last_line"
fi

# --- 2. and 3. epochs against 9 x (forward + backward), channels-last off and on ------------------------
reference() {  # reference LAYOUT: seconds of the bare passes, printed as JSON
  FMT=$1 timeout "$TIMEOUT" "$PY" - <<'PY'
import json, os, statistics, time

import torch
import torch.nn.functional as F

from wpgdkit.models import create_model
from wpgdkit.models.layout import memory_format_name, preferred_memory_format

device = torch.device(os.environ["DEVICE"])
batch = int(os.environ["BATCH"])
fmt = torch.channels_last if os.environ["FMT"] == "channels_last" else torch.contiguous_format
amp = device.type == "cuda"  # `wpgdkit train --amp`: bf16 autocast on CUDA only
cuda = device.type == "cuda"


class Autocast(torch.nn.Module):  # what the training loop wraps the model in
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            return self.model(x).float()


torch.manual_seed(0)
model = Autocast(create_model("wrn-16-10", num_classes=10, input_shape=(3, 32, 32)).to(device))
x = torch.rand(batch, 3, 32, 32, device=device)
y = torch.randint(0, 10, (batch,), device=device)
auto = memory_format_name(preferred_memory_format(model, x, train=True))
model.to(memory_format=fmt)
x = x.contiguous(memory_format=fmt)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4, nesterov=True)


def sync():
    if cuda:
        torch.cuda.synchronize(device)


def full():  # a training step's passes: forward + backward (the 9 x reference)
    F.cross_entropy(model(x), y).backward()


def train_step():  # ... with the optimiser's step
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


def attack_step():  # an attack step's passes: eval forward + gradient with respect to the input only
    adv = x.detach().requires_grad_(True)
    torch.autograd.grad(F.cross_entropy(model(adv), y, reduction="sum"), adv)


def seconds(fn, training):
    model.train(training)
    fn()  # warm-up: cuDNN algorithms, allocator
    samples = []
    for _ in range(5 if cuda else 1):
        sync()
        start = time.perf_counter()
        for _ in range(10 if cuda else 1):
            fn()
        sync()
        samples.append((time.perf_counter() - start) / (10 if cuda else 1))
    return statistics.median(samples)


print(json.dumps({"forward_backward_s": seconds(full, True), "train_step_s": seconds(train_step, True),
                  "attack_pass_s": seconds(attack_step, False), "auto": auto}))
PY
}

epoch_run() {  # epoch_run LAYOUT: trains, then prints "epoch_s reference_s ratio bare_s bare_ratio auto"
  local layout=$1 ckpt=$OUT/wrn-$1.pt
  rm -f "$ckpt" "$OUT/wrn-$1.log.jsonl"
  echo "== 2. wpgdkit train, WRN-16-10, --amp, --memory-format $layout, 2 x $STEPS_PER_EPOCH steps" >&2
  if ! timeout "$TIMEOUT" "$PY" -m wpgdkit train --dataset "$NPZ" --model wrn-16-10 --method pgd --steps 8 \
      --eps 8/255 --eval-steps 0 --val-fraction 0 --epochs 2 --batch-size "$BATCH" --limit "$LIMIT" \
      --device "$DEVICE" --amp --memory-format "$layout" --out "$ckpt" --quiet >"$OUT/train-$layout.txt" 2>&1; then
    tail -n 5 "$OUT/train-$layout.txt" >&2
    return 1
  fi
  local ref
  ref=$(reference "$layout" 2>"$OUT/reference-$layout.txt") || { tail -n 5 "$OUT/reference-$layout.txt" >&2; return 1; }
  REF_JSON=$ref "$PY" - "$OUT/wrn-$layout.log.jsonl" "$ckpt" <<'PY'
import json, os, sys

from wpgdkit.training import load_checkpoint

records = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
state = load_checkpoint(sys.argv[2])
assert state.amp is True, "the checkpoint does not record --amp"
assert all(t.is_contiguous() for t in state.state_dict.values()), "a checkpoint tensor is not contiguous"
ref = json.loads(os.environ["REF_JSON"])
steps = int(os.environ["STEPS_PER_EPOCH"])
epoch_s = records[-1]["seconds"]  # the second epoch: warm kernels
reference_s = 9 * steps * ref["forward_backward_s"]
bare_s = steps * (8 * ref["attack_pass_s"] + ref["train_step_s"])
print(f"{epoch_s:.4f} {reference_s:.4f} {epoch_s / reference_s:.4f} {bare_s:.4f} {epoch_s / bare_s:.4f} {ref['auto']}")
PY
}

declare -A EPOCH
for layout in contiguous channels_last; do
  if result=$(epoch_run "$layout"); then
    read -r epoch_s reference_s ratio bare_s bare_ratio auto <<<"$result"
    EPOCH[$layout]=$epoch_s
    detail="epoch ${epoch_s}s; vs 9 x (fwd+bwd) x $STEPS_PER_EPOCH = ${reference_s}s: $ratio; vs bare steps ${bare_s}s: $bare_ratio"
    if [ "$DEVICE" = cpu ]; then
      record PASS "epoch-$layout" "$detail (dry run: not judged)"
    elif "$PY" -c "import sys; sys.exit(0 if $ratio <= $MAX_RATIO and $bare_ratio <= $MAX_BARE_RATIO else 1)"; then
      record PASS "epoch-$layout" "$detail (limits $MAX_RATIO, $MAX_BARE_RATIO)"
    else
      record FAIL "epoch-$layout" "$detail (limits $MAX_RATIO, $MAX_BARE_RATIO)"
    fi
  else
    record FAIL "epoch-$layout" "the run failed; see $OUT/train-$layout.txt and $OUT/reference-$layout.txt"
  fi
done
if [ -n "${EPOCH[contiguous]:-}" ] && [ -n "${EPOCH[channels_last]:-}" ]; then
  speed=$("$PY" -c "print(f'{${EPOCH[channels_last]} / ${EPOCH[contiguous]}:.3f}')")
  faster=$("$PY" -c "print('channels_last' if ${EPOCH[channels_last]} < ${EPOCH[contiguous]} else 'contiguous')")
  record PASS layout "channels_last/contiguous epoch time $speed: $faster faster; auto picks ${auto:-?} for this model and batch"
else
  record SKIP layout "needs both epoch runs"
fi

# --- 4. one-process torchrun -----------------------------------------------------------------------------
echo "== 4. torchrun --nproc_per_node 1"
cat >"$OUT/backend.py" <<'PY'
import os

import torch
import torch.distributed as dist

from wpgdkit.training.distributed import setup_distributed

ctx = setup_distributed(os.environ["DEVICE"])
wrapped = ctx.wrap(torch.nn.Linear(2, 2).to(ctx.device))
total = ctx.all_reduce_sum(torch.ones(2, dtype=torch.float64, device=ctx.device))
print("backend", dist.get_backend() if dist.is_initialized() else "none", "world", ctx.world_size,
      "wrapped", type(wrapped).__name__, "sum", total.tolist())
ctx.close()
PY
expected=$([ "$DEVICE" = cuda ] && echo nccl || echo gloo)
backend=$(timeout "$TIMEOUT" "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 "$OUT/backend.py" 2>"$OUT/torchrun-backend.txt" | grep '^backend')
rm -f "$OUT/torchrun.pt" "$OUT/torchrun.log.jsonl"
if timeout "$TIMEOUT" "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 -m wpgdkit train \
    --dataset "$NPZ" --model wrn-16-10 --method pgd --steps 8 --eval-steps 0 --val-fraction 0 --epochs 1 \
    --batch-size "$BATCH" --limit "$((2 * BATCH))" --device "$DEVICE" --amp --out "$OUT/torchrun.pt" --quiet \
    >"$OUT/torchrun-train.txt" 2>&1 && [ -s "$OUT/torchrun.pt" ] && grep -q "^backend $expected world 1 wrapped DistributedDataParallel" <<<"$backend"; then
  record PASS torchrun "$backend; wpgdkit train through DDP wrote $OUT/torchrun.pt"
else
  record FAIL torchrun "expected backend $expected and DistributedDataParallel, got '${backend:-nothing}'; see $OUT/torchrun-*.txt"
fi

# --- summary ------------------------------------------------------------------------------------------------
echo
echo "gpu_check summary ($DEVICE; outputs in $OUT):"
printf '  %s\n' "${SUMMARY[@]}"
[ "$DEVICE" = cpu ] && echo "  (dry run on the CPU: the timings are not the GPU's; the CUDA-only parts skipped)"
exit "$FAILED"
