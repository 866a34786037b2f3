"""The coupling and spline transforms: invertibility and log-determinant against autograd."""

from __future__ import annotations

import pytest
import torch

from caloclouds.config import FlowConfig
from flows.shower_flow import ShowerFlowModel
from flows.transforms import ConditionalAffineCouplingTanh, ConditionalRQSpline

D, C = 5, 2


@pytest.mark.parametrize(
    "make",
    [
        lambda: ConditionalAffineCouplingTanh(D, C, [16]),
        lambda: ConditionalRQSpline(D, C, [16], bins=5, bound=2.0),
    ],
    ids=["coupling", "spline"],
)
def test_invertible_with_exact_log_det(make) -> None:
    torch.manual_seed(0)
    t = make().double()
    for p in t.parameters():
        p.data.normal_(0, 0.5)  # leave the identity start
    context = torch.randn(1, C, dtype=torch.float64)
    for x in (torch.randn(1, D, dtype=torch.float64), 3 * torch.randn(1, D, dtype=torch.float64)):  # inside/out
        y = t.condition(context)(x)
        inv = t.condition(context)
        x_back = inv.inv(y)
        torch.testing.assert_close(x_back, x)
        jac = torch.autograd.functional.jacobian(lambda v: t.condition(context)(v), x).reshape(D, D)
        expected = torch.linalg.slogdet(jac)[1]
        torch.testing.assert_close(t.condition(context).log_abs_det_jacobian(x, y)[0], expected)
        torch.testing.assert_close(inv.log_abs_det_jacobian(x_back, y)[0], expected)


def test_flow_log_prob_gradients_reach_every_parameter() -> None:
    model = ShowerFlowModel(8, 1, FlowConfig(coupling_hidden=(8,), spline_hidden=(4,)))
    for p in model.parameters():
        p.data.normal_(0, 0.1)
    loss = -model(torch.randn(16, 1)).log_prob(torch.randn(16, 8)).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_permutations_are_buffers_not_reseeded() -> None:
    a = ShowerFlowModel(8, 1, FlowConfig(permutation_seed=1))
    b = ShowerFlowModel(8, 1, FlowConfig(permutation_seed=2))
    perms = [k for k in a.state_dict() if k.startswith("perm_")]
    assert perms and any(not torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in perms)
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in perms)
