"""Structured pruning: units removed, the right ones, and the modes still agree."""

import torch

from pyaimc.s4d.classifier import build_model
from pyaimc.experiments.config import from_dict
from pyaimc.s4d.prune import (channel_importance, mode_energy, prune_channels, prune_model,
                             prune_states, pruned_config)
from pyaimc.s4d.step import RecurrentClassifier

torch.set_num_threads(1)


def _net(norm="layer", prune=None):
    cfg = from_dict({"model": {"d_model": 8, "d_state": 12, "n_layers": 2, "norm": norm},
                     "prune": prune or {}})
    net = build_model(cfg, d_input=2, n_classes=4).double()
    x = torch.randn(5, 30, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    net.train()
    net(x)
    return cfg, net.eval(), x


def test_state_pruning_keeps_the_most_energetic_modes():
    _, net, _ = _net()
    before = [mode_energy(b.ssm) for b in net.blocks]
    C_before = [b.ssm.C.detach().clone() for b in net.blocks]
    prune_states(net, d_state=4)
    for block, energy, C in zip(net.blocks, before, C_before):
        assert block.ssm.C.shape == (8, 2, 2) and block.ssm.A_imag.shape == (8, 2)
        assert block.ssm.d_state == 4
        kept = energy.topk(2, dim=1).indices.sort(dim=1).values
        # the survivors are the originals, untouched
        assert torch.equal(block.ssm.C, C.gather(1, kept.unsqueeze(-1).expand(-1, -1, 2)))
        # and every removed mode had less energy than every kept one (per channel)
        kept_min = energy.gather(1, kept).min(dim=1).values
        mask = torch.ones_like(energy, dtype=torch.bool).scatter(1, kept, False)
        assert torch.all(torch.where(mask, energy, -1.0).max(dim=1).values <= kept_min)


def test_removing_silent_modes_leaves_the_output_unchanged():
    _, net, x = _net()
    with torch.no_grad():
        for block in net.blocks:
            block.ssm.C[:, 3:] = 0.0  # modes 3..5 are never read: zero energy
    y = net(x)
    prune_states(net, d_state=6)
    torch.testing.assert_close(net(x), y, rtol=0, atol=1e-12)


def test_removing_unread_channels_leaves_the_output_unchanged():
    _, net, x = _net(norm="batch")  # per-channel norm: channels do not mix outside the GLU
    unread = torch.tensor([1, 6])
    with torch.no_grad():
        for block in net.blocks:
            block.glu.weight[:, unread] = 0.0
        net.decoder.weight[:, unread] = 0.0
    assert set(channel_importance(net).topk(2, largest=False).indices.tolist()) == {1, 6}
    y = net(x)
    prune_channels(net, d_model=6)
    assert net.encoder.weight.shape == (6, 2) and net.decoder.weight.shape == (4, 6)
    assert net.blocks[0].glu.weight.shape == (12, 6) and net.blocks[1].norm.num_features == 6
    torch.testing.assert_close(net(x), y, rtol=0, atol=1e-12)


def test_pruned_model_matches_its_config_and_modes_agree():
    cfg, net, x = _net(prune={"d_state": 6, "d_model": 5})
    prune_model(net, cfg)
    fresh = build_model(pruned_config(cfg), d_input=2, n_classes=4).double()
    fresh.load_state_dict(net.state_dict())  # strict: same names, same shapes
    assert net.blocks[0].norm.normalized_shape == (5,)
    torch.testing.assert_close(RecurrentClassifier(net)(x), net(x), rtol=0, atol=1e-10)
