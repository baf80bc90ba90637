"""WarmupLinearDecayLR: 6% linear warm-up, linear decay, per-group bases."""
import pytest
import torch
from mmengine.config import Config

from avtoolkit.engine.schedulers import (WarmupLinearDecayLR,
                                         fill_schedule_lengths)


def make_optimizer():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(
        torch.zeros(1))
    return torch.optim.AdamW([dict(params=[a], lr=1e-4),
                              dict(params=[b], lr=1e-5)])


def run(total, ratio):
    opt = make_optimizer()
    sched = WarmupLinearDecayLR(opt, warmup_ratio=ratio, total_iters=total)
    rates = []
    for _ in range(total):
        rates.append([g['lr'] for g in opt.param_groups])
        opt.step()
        sched.step()
    return rates


def test_shape_of_the_schedule():
    rates = run(100, 0.06)
    first = [r[0] for r in rates]
    assert first[0] == pytest.approx(1e-4 / 6)
    assert first[5] == pytest.approx(1e-4)          # end of warm-up
    assert first[6] == pytest.approx(1e-4 * 94 / 94)
    assert first[50] == pytest.approx(1e-4 * 50 / 94)
    assert first[99] == pytest.approx(1e-4 * 1 / 94)
    assert all(b >= a for a, b in zip(first[:6], first[1:6]))
    assert all(b <= a for a, b in zip(first[5:], first[6:]))
    # the orthogonal group keeps its tenth of the rate throughout
    for lr, lr_orth in rates:
        assert lr_orth == pytest.approx(lr / 10)


def test_220k_recipe_warms_up_for_13200_iterations():
    sched = WarmupLinearDecayLR(make_optimizer(), total_iters=220_000)
    assert sched.warmup_iters == 13_200


def test_train_length_fills_total_iters():
    cfg = Config(dict(train_cfg=dict(max_iters=500),
                      param_scheduler=[dict(type='WarmupLinearDecayLR')]))
    fill_schedule_lengths(cfg)
    assert cfg.param_scheduler[0].total_iters == 500
    with pytest.raises(ValueError, match='total_iters'):
        WarmupLinearDecayLR(make_optimizer())
