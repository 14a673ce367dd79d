#!/usr/bin/env bash
# The README's worked example of the non-image route: scikit-learn's breast-cancer diagnostic data
# (569 tumours, 30 features, no download), an asymmetric cost of mistakes, CE / PGD / WPGD / PGD with
# class weights trained and audited from the command line, over several seeds.
#
#   bash docs/examples/breast-cancer.sh OUT_DIR [SEEDS...]      (default seeds: 0 1 2 3 4)
#
# Needs scikit-learn (pip install scikit-learn; it is in wpgdkit's test extra).
set -euo pipefail
out=${1:-bc-example}; shift || true
seeds=${*:-0 1 2 3 4}
mkdir -p "$out" && cd "$out"

# 1. The data, as arrays in an .npz (75 % train / 25 % test, stratified, fixed seed).
python - <<'PY'
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

data = load_breast_cancer()                     # label 0: malignant, 1: benign
x_train, x_test, y_train, y_test = train_test_split(
    data.data.astype("float32"), data.target, test_size=0.25, stratify=data.target, random_state=0)
np.savez("bc.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
         class_names=np.array(data.target_names))
PY

# 2. The cost of a mistake: calling a malignant tumour benign costs 10, the reverse 1.
printf ',malignant,benign\nmalignant,0,10\nbenign,1,0\n' > costs.csv
wpgdkit metric build --dataset bc.npz --source file --input costs.csv --allow-asymmetric --out bc-cost.csv
printf 'class,weight\nmalignant,10\nbenign,1\n' > weights.csv

# 3. Train and audit, ε = 0.3 standard deviations per feature (ℓ∞), 20 epochs of an MLP.
common=(--dataset bc.npz --standardize --model mlp --eps 0.3 --steps 7 --epochs 20 --lr 0.05 --batch-size 32 -q --force)
for seed in $seeds; do
  wpgdkit train "${common[@]}" --seed "$seed" --method ce   --out "s$seed/ce.pt"
  wpgdkit train "${common[@]}" --seed "$seed" --method pgd  --out "s$seed/pgd.pt"
  wpgdkit train "${common[@]}" --seed "$seed" --method wpgd --metric bc-cost.csv --out "s$seed/wpgd.pt"
  wpgdkit train "${common[@]}" --seed "$seed" --method pgd  --class-weights weights.csv --out "s$seed/pgd-weighted.pt"
  wpgdkit audit "s$seed"/{ce,pgd,wpgd,pgd-weighted}.pt --baseline "s$seed/ce.pt" --reference "s$seed/pgd.pt" \
      --metric bc-cost.csv --seed "$seed" --json "s$seed/audit.json" -q
  wpgdkit audit "s$seed"/{ce,pgd,wpgd,pgd-weighted}.pt --reference "s$seed/pgd.pt" --attack wpgd \
      --metric bc-cost.csv --seed "$seed" --json "s$seed/audit-wpgd.json" -q
done

# 4. The summary: mean over seeds ± standard error of the mean.
python - $seeds <<'PY'
import json, math, sys
seeds = sys.argv[1:]
def stats(values):
    m = sum(values) / len(values)
    se = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1) / len(values)) if len(values) > 1 else float("nan")
    return f"{m:6.2f} ± {se:4.2f}"
for attack in ("audit", "audit-wpgd"):
    docs = [json.load(open(f"s{s}/{attack}.json")) for s in seeds]
    print(f"\n{attack}.json ({len(seeds)} seeds, {docs[0]['num_points']} test points: "
          f"{docs[0]['class_counts'][0]} malignant, {docs[0]['class_counts'][1]} benign)")
    print(f"{'model':14} {'NE %':>14} {'AE %':>14} {'malignant→benign %':>20} {'benign→malignant %':>20} {'S':>14}")
    for i, record in enumerate(docs[0]["models"]):
        rows = [d["models"][i] for d in docs]
        mb = [100 * r["confusion_adversarial"]["rates"][0][1] for r in rows]
        bm = [100 * r["confusion_adversarial"]["rates"][1][0] for r in rows]
        print(f"{record['name']:14} {stats([r['natural_error'] for r in rows]):>14} "
              f"{stats([r['adversarial_error'] for r in rows]):>14} {stats(mb):>20} {stats(bm):>20} "
              f"{stats([r['score'] for r in rows]):>14}")
PY
