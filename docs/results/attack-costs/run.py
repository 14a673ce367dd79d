"""Attack costs: CPU seconds per 1,000 points for each registered attack, ratio to PGD-20, AE and S, one run."""
import time, torch, json
torch.set_num_threads(1)
from wpgdkit.datasets import load_tensors
from wpgdkit.attacks import AttackConfig, ThreatModel, create_attack
from wpgdkit.labelmetric import read_metric
from wpgdkit.resources import metrics_dir
from wpgdkit.audit.scores import confusion_matrix, weighted_score
torch.manual_seed(0)
x, y = load_tensors("fashion-mnist", "train", limit=6000, seed=0)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for epoch in range(3):
    for i in range(0, len(x), 128):
        opt.zero_grad(); torch.nn.functional.cross_entropy(model(x[i:i+128]), y[i:i+128]).backward(); opt.step()
model.eval()
xt, yt = load_tensors("fashion-mnist", "test", limit=500, seed=0)
metric = read_metric(metrics_dir() / "fashion-mnist-wordnet.csv")
cost = torch.tensor(metric.matrix, dtype=torch.float64)
with torch.no_grad():
    ne = (model(xt).argmax(1) != yt).double().mean().item()
threat = ThreatModel(eps=0.1, steps=20)
rows = {}
for name in ["pgd", "wpgd", "apgd-ce", "apgd-dlr", "apgd-w", "apgd-t", "worst-cost", "strong", "pgd"]:
    atk = create_attack(AttackConfig(name, threat), model, metric=metric)
    t0 = time.process_time()
    xa = torch.cat([atk(xt[i:i+250], yt[i:i+250], seeds=[i]) for i in range(0, len(xt), 250)])
    dt = time.process_time() - t0
    with torch.no_grad():
        pred = model(xa).argmax(1)
    rows.setdefault(name, []).append(dict(seconds_per_1000=1000 * dt / len(xt), ae=100 * (pred != yt).double().mean().item(),
                     S=weighted_score(confusion_matrix(yt, pred, 10), cost)))
base = sum(r["seconds_per_1000"] for r in rows["pgd"]) / len(rows["pgd"])  # PGD-20 timed first and last
print(f"MLP 784-256-10, 3 epochs CE on 6,000 Fashion-MNIST images; NE {100*ne:.1f} %; 500 test points; linf eps 0.1, 20 steps; 1 thread")
for name, rs in rows.items():
    r = rs[0]
    print(f"{name:11} {r['seconds_per_1000']:7.2f} s/1000 pts  x{r['seconds_per_1000']/base:6.2f} of PGD-20   AE {r['ae']:5.1f} %   S {r['S']:.3f}")
