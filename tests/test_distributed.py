"""fit under torchrun: two CPU processes (Gloo) train like one process on the combined batch.

Each process trains on ``PER_PROCESS`` images per step; DistributedDataParallel averages their
gradients. TinyDetector's losses are means over the batch, so the average of the two processes'
gradients is the gradient of the mean loss over all ``2 * PER_PROCESS`` images: one process with
that batch must end with the same weights (up to float rounding: the sums run in another order).

This file is also the script torchrun runs in each process (see ``__main__`` at the bottom).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_fixtures import TinyShapes, tiny_setup

from tutorial_det.training import CHECKPOINT_NAME, distributed, fit, load_checkpoint
from tutorial_det.training.distributed import PROCESS_GROUP_TIMEOUT, process_group_timeout

STEPS = 2
PER_PROCESS = 2
ITEMS = 8  # one epoch = 2 steps of 2 processes x 2 images


def test_a_process_waits_for_the_others_a_bounded_time(monkeypatch):
    monkeypatch.delenv("TUTORIAL_DET_DIST_TIMEOUT", raising=False)
    assert process_group_timeout().total_seconds() == PROCESS_GROUP_TIMEOUT < 30 * 60
    monkeypatch.setenv("TUTORIAL_DET_DIST_TIMEOUT", "42.5")
    assert process_group_timeout().total_seconds() == 42.5
    monkeypatch.setenv("TUTORIAL_DET_DIST_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="TUTORIAL_DET_DIST_TIMEOUT='soon' must be a positive"):
        process_group_timeout()
    monkeypatch.setenv("TUTORIAL_DET_DIST_TIMEOUT", "7")
    joined = {}
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kw: joined.update(kw))
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    distributed.setup("cpu")
    assert joined["timeout"].total_seconds() == 7 and joined["backend"] == "gloo"


def train_in_this_process(out_dir: Path) -> None:
    """What every torchrun process runs: the same fit call, its results saved per rank."""
    rank = int(os.environ["RANK"])
    # different initial weights on each process: DDP must start them all from rank 0's
    model, optimizer = tiny_setup(seed=rank)
    history = fit(
        model,
        TinyShapes(ITEMS),
        optimizer=optimizer,
        max_steps=STEPS,
        batch_size=PER_PROCESS,
        checkpoint_dir=out_dir / "checkpoints",
        progress=False,
        log_every=1,
    )
    torch.save(
        {"model": model.state_dict(), "loss": history.loss, "world_size": history.world_size},
        out_dir / f"rank{rank}.pt",
    )


@pytest.mark.slow
def test_two_processes_train_like_one_on_the_combined_batch(tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        __file__,
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    reference, optimizer = tiny_setup(seed=0)
    history = fit(
        reference,
        TinyShapes(ITEMS),
        optimizer=optimizer,
        max_steps=STEPS,
        batch_size=2 * PER_PROCESS,
        progress=False,
        log_every=None,
    )
    for key, value in reference.state_dict().items():
        assert torch.equal(ranks[0]["model"][key], ranks[1]["model"][key]), key  # replicas agree
        torch.testing.assert_close(ranks[0]["model"][key], value, rtol=1e-5, atol=1e-6)
    # the logged losses are the mean over the processes: the combined batch's loss
    assert ranks[0]["loss"] == ranks[1]["loss"] == pytest.approx(history.loss, rel=1e-5)
    assert ranks[0]["world_size"] == 2
    # rank 0 alone logs and writes the checkpoint, which holds every process's RNG state
    assert done.stdout.count("step 1 epoch 0: loss") == 1
    assert done.stdout.count("checkpoint written") == 1
    state = load_checkpoint(tmp_path / "checkpoints" / CHECKPOINT_NAME)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # seed + rank


@pytest.fixture
def torchrun_rank_1_of_2(monkeypatch):
    """The environment of torchrun's second process on a machine whose GPU count the test sets
    (``set_gpus(n)``); the process group is not really joined. Yields the calls made."""
    calls = []
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.delenv("TUTORIAL_DET_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    monkeypatch.setattr(
        torch.distributed, "init_process_group", lambda **kw: calls.append(("init", kw))
    )

    def set_gpus(count):
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        return calls

    return set_gpus


@pytest.mark.parametrize("asked", ["cuda", "cuda:0", "cuda:1", None], ids=lambda v: f"asked={v}")
def test_each_torchrun_process_takes_its_local_rank_s_gpu(torchrun_rank_1_of_2, asked):
    calls = torchrun_rank_1_of_2(2)
    ctx, device = distributed.setup(asked)
    assert device == torch.device("cuda", 1)
    assert (ctx.rank, ctx.local_rank, ctx.world_size) == (1, 1, 2)
    (_, gpu), (_, init) = calls
    assert gpu == torch.device("cuda", 1)
    assert (init["backend"], init["rank"], init["world_size"]) == ("nccl", 1, 2)


def test_more_processes_than_gpus_or_another_rank_s_gpu_is_refused(torchrun_rank_1_of_2):
    calls = torchrun_rank_1_of_2(1)
    with pytest.raises(ValueError, match=r"local rank 1 needs cuda:1 but this machine has 1 GPU"):
        distributed.setup("cuda")
    torchrun_rank_1_of_2(4)
    with pytest.raises(
        ValueError, match=r"takes the GPU of its local rank \(cuda:1 here\), not cuda:2"
    ):
        distributed.setup("cuda:2")
    assert calls == []  # refused before touching a GPU or the process group


if __name__ == "__main__":
    train_in_this_process(Path(sys.argv[1]))
