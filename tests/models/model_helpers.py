"""Helpers shared by the model tests."""

import torch


def randomise(model, seed=0, std=0.05):
    """Untrained models are zero-initialised at the output; perturb every weight so outputs depend on inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return model.eval()
