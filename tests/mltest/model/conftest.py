"""Model-check tests: warm torch up before pytester snapshots ``sys.modules``.

In-process pytester runs restore ``sys.modules`` afterwards, so torch modules
that load lazily on the first optimizer step (``torch._dynamo`` and the
inductor test operators it registers) would be imported again in the next run
and fail to register their operators twice. Loading them once here keeps them
in every snapshot.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _torch_warm() -> None:
    import torch

    # The zoo's models are tiny: one intra-op thread is faster than two threads
    # spinning against each other on a shared machine.
    torch.set_num_threads(1)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    import mltest.model  # noqa: F401
