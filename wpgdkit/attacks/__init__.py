"""Adversarial attacks on tensors: PGD, and WPGD as PGD on the Wasserstein loss.

WPGD (paper, Def. 6) is :func:`pgd_attack` with
``loss_fn=wpgdkit.losses.WassersteinLoss(cost, p=p, lam=lam)``.
"""

from __future__ import annotations

from wpgdkit.attacks.pgd import NORMS, LossFn, PGDConfig, eval_mode, pgd_attack

__all__ = ["NORMS", "LossFn", "PGDConfig", "eval_mode", "pgd_attack"]
