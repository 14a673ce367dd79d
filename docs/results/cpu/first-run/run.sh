#!/usr/bin/env bash
# A first run at the cpu scale of `wpgdkit reproduce --scale cpu` (one seed): CE, PGD and fast-PGD MLPs on all
# 60,000 Fashion-MNIST images for 10 epochs (ℓ∞ ε = 0.1, 5 inner steps, lr 0.05), audited on the full test set
# with PGD-20, APGD-CE and worst-cost and the shipped WordNet metric. One torch thread.
set -euo pipefail
common=(--dataset fashion-mnist --model mlp --eps 0.1 --epochs 10 --lr 0.05 --batch-size 128 --eval-steps 0 -q --force --threads 1)
/usr/bin/time -f "ce train %e s wall %U s user" wpgdkit train "${common[@]}" --method ce --out ce.pt
/usr/bin/time -f "pgd train %e s wall %U s user" wpgdkit train "${common[@]}" --steps 5 --method pgd --out pgd.pt
# fast-pgd takes one step (no --steps); with --eval-steps 0 the catastrophic-overfitting guard has nothing to watch.
/usr/bin/time -f "fast-pgd train %e s wall %U s user" wpgdkit train "${common[@]}" --method fast-pgd --co-guard off --out fast.pt
for a in pgd apgd-ce worst-cost; do
  /usr/bin/time -f "audit $a %e s wall %U s user" wpgdkit audit ce.pt pgd.pt fast.pt --attack $a \
      --metric metrics/fashion-mnist-wordnet.csv --threads 1 --json "audit-$a.json" -q
done
