"""The cylindrical U-Net and the EDM adapter for images."""

from __future__ import annotations

import torch

from caloclouds.diffusion.edm import EDMDenoiser
from caloclouds.voxel.adapter import ImageCond
from caloclouds.voxel.unet import CylindricalConv3d, CylindricalUNet

SHAPE = (6, 16, 5)


def _net() -> CylindricalUNet:
    torch.manual_seed(0)
    net = CylindricalUNet(SHAPE, [1.0, 3.0, 5.0, 7.0, 9.0], 3, channels=(4, 8, 8), embedding=16)
    torch.nn.init.normal_(net.out_conv.weight)  # the output layer starts at zero
    return net


def test_shapes_and_gradients() -> None:
    net = _net()
    x = torch.randn(2, 1, *SHAPE)
    out = net(x, torch.randn(2), torch.randn(2, 3))
    assert out.shape == x.shape
    out.pow(2).mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_circular_padding_joins_first_and_last_alpha_bin() -> None:
    conv = CylindricalConv3d(1, 1)
    torch.nn.init.ones_(conv.conv.weight)
    torch.nn.init.zeros_(conv.conv.bias)
    x = torch.zeros(1, 1, 3, 8, 3)
    x[0, 0, 1, 0, 1] = 1.0  # first alpha bin
    y = conv(x)
    assert y[0, 0, 1, 7, 1] == 1.0  # reaches the last alpha bin through the circular padding
    assert y[0, 0, 1, 2, 1] == 0.0


def test_rotation_equivariance() -> None:
    """Rolling the image along alpha by a multiple of the total stride rolls the output."""
    net = _net().eval()
    x, c, f = torch.randn(2, 1, *SHAPE), torch.randn(2), torch.randn(2, 3)
    with torch.no_grad():
        rolled = net(torch.roll(x, 4, dims=3), c, f)
        torch.testing.assert_close(rolled, torch.roll(net(x, c, f), 4, dims=3), rtol=1e-4, atol=1e-5)


def test_conditioning_changes_the_output() -> None:
    net = _net().eval()
    x = torch.randn(1, 1, *SHAPE)
    with torch.no_grad():
        a = net(x, torch.zeros(1), torch.zeros(1, 3))
        b = net(x, torch.zeros(1), torch.ones(1, 3))
        c = net(x, torch.ones(1), torch.zeros(1, 3))
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


def test_edm_denoiser_runs_on_images() -> None:
    """The point-cloud EDMDenoiser is reused unchanged via ImageCond."""
    net = _net()
    den = EDMDenoiser(net, sigma_data=1.0)
    x = torch.randn(3, 1, *SHAPE)
    sigma = torch.tensor([0.1, 1.0, 10.0])
    cond = ImageCond.for_images(torch.randn(3, 3))
    c_skip, c_out, c_in = den.scalings(sigma)
    expected = c_skip[:, None, None, None, None] * x + c_out[:, None, None, None, None] * net(
        x * c_in[:, None, None, None, None], den.c_noise(sigma), cond.features
    )
    torch.testing.assert_close(den(x, sigma, cond=cond), expected)
    loss = den.loss(x, torch.randn_like(x), sigma, cond=cond)
    assert loss.shape == (3, 1, *SHAPE[:2])
