"""Loss landscapes around trained weights (Li, Xu, Taylor, Studer, Goldstein 2018, "Visualizing the
Loss Landscape of Neural Nets").

Directions are Gaussian, then *filter-normalized*: each filter (a row of a Linear weight, an
output channel of a Conv weight) of the direction is rescaled to the norm of the same filter of
the weights, so that a step of 1 means "as large as the weights themselves" in every layer and
landscapes of different networks are comparable. Biases and other 1-D parameters (norm gains) are
left unperturbed, as in the paper. Losses are measured in eval mode on a fixed, seeded subset of
the training data.
"""

from __future__ import annotations

import torch


def filter_normalized_direction(params: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    direction = []
    for p in params:
        if p.ndim < 2:
            direction.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=generator, dtype=torch.float32).to(p.device, p.dtype)
        filters_p = p.detach().reshape(p.shape[0], -1)
        filters_d = d.reshape(p.shape[0], -1)
        scale = filters_p.norm(dim=1, keepdim=True) / filters_d.norm(dim=1, keepdim=True).clamp_min(1e-12)
        direction.append((filters_d * scale).reshape(p.shape))
    return direction


@torch.no_grad()
def mean_loss(model, loss_fn, x: torch.Tensor, y: torch.Tensor, chunk: int = 1024) -> float:
    total = 0.0
    for start in range(0, len(x), chunk):
        xb, yb = x[start:start + chunk], y[start:start + chunk]
        total += float(loss_fn(model(xb), yb)) * len(xb)
    return total / len(x)


@torch.no_grad()
def landscape(model, loss_fn, x: torch.Tensor, y: torch.Tensor, *, points: int, span: float, seed: int) -> dict:
    """Loss along one direction (points values) and over a plane (points x points), centred on the weights."""
    params = [p for p in model.parameters()]
    center = [p.detach().clone() for p in params]
    generator = torch.Generator().manual_seed(seed)
    d1 = filter_normalized_direction(params, generator)
    d2 = filter_normalized_direction(params, generator)
    alphas = torch.linspace(-span, span, points).tolist()
    was_training = model.training
    model.eval()

    def loss_at(a: float, b: float) -> float:
        for p, c, u, v in zip(params, center, d1, d2):
            p.copy_(c + a * u + b * v)
        return mean_loss(model, loss_fn, x, y)

    try:
        line = [loss_at(a, 0.0) for a in alphas]
        grid = [[loss_at(a, b) for a in alphas] for b in alphas]  # grid[row = direction 2][col = direction 1]
        center_loss = loss_at(0.0, 0.0)
    finally:
        for p, c in zip(params, center):
            p.copy_(c)
        model.train(was_training)
    return {"points": points, "span": span, "seed": seed, "samples": len(x), "alphas": alphas,
            "center_loss": center_loss, "loss_1d": line, "loss_2d": grid}
