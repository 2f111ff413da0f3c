"""Multi-process training (Lightning DDP, gloo on CPU), run for real as `bisep train`
subprocesses on the tiny data: one writer, ranks that agree, disjoint shards, resume after a
kill, and two "nodes" on localhost started through Lightning's environment variables.

Each process logs the MoMs of its batches (``BISEP_LOG_LEVEL=DEBUG``, :mod:`bisep.train.module`)
and the checkpoint it chose (:mod:`bisep.train.fit`); every process's output reaches the
launching command's stdout (Lightning's launcher starts the other ranks with the same stdout),
or its own file for the two-node run.
"""
import os
import re
import signal
import socket
import subprocess
import time
from collections import defaultdict

import pytest
import torch

from conftest import BIN, run_cli
from test_train import TINY

DDP = ["trainer.strategy=ddp", "trainer.accelerator=cpu", "trainer.num_threads=1"]
STEP_LINE = re.compile(r"^rank (\d+) epoch (\d+) step (\d+) MoMs (\S+)$", re.M)
CHOSE_LINE = re.compile(r"^bisep train: rank (\d+) chose (\S+) \((\S+) (\S+)\)$", re.M)


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """The tiny data of tests/test_train.py with plans of 8 training MoMs: with 2 processes
    of batch 2, an epoch is 2 steps."""
    root = tmp_path_factory.mktemp("ddp")
    run_cli("prepare", "synth_music", root / "data", "--conf", TINY / "data.yaml", check=True)
    run_cli("mix", "--data-dir", root / "data", "--dump-dir", root / "dump",
            "--num-train-mom", "8", "--num-valid-mom", "4", check=True)
    return root / "data", root / "dump"


def train_args(plans, exp, *overrides):
    data, dump = plans
    return [str(BIN / "bisep"), "train", "--config", str(TINY / "train_weak.yaml"),
            "--data-dir", str(data), "--dump-dir", str(dump), "--exp-dir", str(exp), *DDP,
            *overrides]


def environment(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR",
                        "MASTER_PORT", "SLURM_PROCID", "SLURM_JOB_ID")}
    return {**env, "BISEP_LOG_LEVEL": "DEBUG", "OMP_WAIT_POLICY": "PASSIVE", **extra}


def steps(output: str) -> dict[tuple[int, int], tuple[int, list[str]]]:
    """``{(rank, step): (epoch, MoM ids)}`` of a run's debug lines."""
    return {(int(r), int(s)): (int(e), ids.split(","))
            for r, e, s, ids in STEP_LINE.findall(output)}


def assert_ranks_agree(output: str, ranks: int) -> None:
    chosen = {int(rank): rest for rank, *rest in CHOSE_LINE.findall(output)}
    assert sorted(chosen) == list(range(ranks)), output[-3000:]
    assert len(set(map(tuple, chosen.values()))) == 1, chosen  # same file, same val_loss
    path, monitor, score = chosen[0]
    assert monitor == "val_loss" and path.endswith(".ckpt") and float(score) > 0


def assert_one_writer(output: str, exp) -> None:
    assert re.findall(r"^bisep train: rank (\d+) wrote (\S+)$", output, re.M) == \
        [("0", str(exp / "model.pth"))]
    assert output.count(f"bisep train: wrote {exp / 'model.pth'}") == 1
    for name in ("model.pth", "config.yaml", "data.json", "logs/metrics.csv"):
        assert (exp / name).is_file(), name
    assert not [p for p in exp.rglob("*") if p.name.endswith(".tmp")]


def assert_disjoint_shards(seen: dict, ranks: int, epoch_size: int) -> None:
    by_epoch = defaultdict(lambda: defaultdict(list))
    for (rank, _), (epoch, ids) in sorted(seen.items()):
        by_epoch[epoch][rank] += ids
    for epoch, shards in by_epoch.items():
        assert sorted(shards) == list(range(ranks)), (epoch, shards)
        everything = [mom for shard in shards.values() for mom in shard]
        assert len(everything) == len(set(everything)) == epoch_size, (epoch, shards)
    orders = [tuple(by_epoch[e][0]) for e in sorted(by_epoch)]
    assert len(set(orders)) == len(orders), orders  # reshuffled every epoch


@pytest.fixture(scope="module")
def killed_and_resumed(plans, tmp_path_factory):
    """A 2-process run of 8 steps killed after a checkpoint, then re-run to the end.

    Returns (exp folder, killed run's output, step it was killed at, resumed run's output).
    """
    exp = tmp_path_factory.mktemp("ddp-run") / "exp"
    args = train_args(plans, exp, "trainer.devices=2", "trainer.max_steps=8",
                      "trainer.checkpoint_every_n_steps=2")
    log = exp.parent / "killed.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=environment(),
                                start_new_session=True)
    last = exp / "checkpoints" / "last.ckpt"
    deadline, saved = time.time() + 300, 0
    while time.time() < deadline and proc.poll() is None:
        if last.exists():
            saved = torch.load(last, weights_only=True)["global_step"]
            # Both ranks are inside the step after the checkpoint: killed mid-run.
            if saved >= 2 and {(0, saved), (1, saved)} <= steps(log.read_text()).keys():
                break
        time.sleep(0.2)
    assert proc.poll() is None, log.read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the rank it started
    proc.wait()
    killed_at = torch.load(last, weights_only=True)["global_step"]
    assert 2 <= killed_at < 8
    resumed = subprocess.run(args, capture_output=True, text=True, env=environment(),
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return exp, log.read_text(), killed_at, resumed.stdout


def test_ddp_resume_after_kill_continues_where_the_checkpoint_is(killed_and_resumed):
    exp, killed, killed_at, resumed = killed_and_resumed
    assert f"resuming from step {killed_at}" in resumed
    assert torch.load(exp / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8
    before, after = steps(killed), steps(resumed)
    assert {step for _, step in after} == set(range(killed_at, 8))
    # A step redone after the resume reads the same MoMs on the same rank: the shards
    # depend on the seed and the epoch only.
    common = before.keys() & after.keys()
    assert common
    assert all(before[key] == after[key] for key in common)
    assert len(list((exp / "logs").glob("run*"))) == 2


def test_ddp_only_rank_zero_writes(killed_and_resumed):
    exp, _, _, resumed = killed_and_resumed
    assert_one_writer(resumed, exp)
    assert "global batch 4 MoMs per step (2 per process)" in resumed
    assert "1 node(s) x 2 device(s)" in resumed


def test_ddp_ranks_choose_the_same_checkpoint(killed_and_resumed):
    _, _, _, resumed = killed_and_resumed
    assert_ranks_agree(resumed, ranks=2)


def test_ddp_ranks_read_disjoint_shards_reshuffled_each_epoch(killed_and_resumed):
    _, killed, killed_at, resumed = killed_and_resumed
    seen = {**{k: v for k, v in steps(killed).items() if k[1] < killed_at}, **steps(resumed)}
    assert {step for _, step in seen} == set(range(8))
    assert_disjoint_shards(seen, ranks=2, epoch_size=8)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_nodes_on_localhost(plans, tmp_path):
    # What a cluster scheduler does: one process per node, each told its node rank and where
    # node 0 listens; Lightning's environment reads them (num_nodes: 2, devices: 1).
    exp = tmp_path / "exp"
    args = train_args(plans, exp, "trainer.devices=1", "trainer.num_nodes=2",
                      "trainer.max_steps=4")
    port = str(free_port())
    nodes = []
    for node in (0, 1):
        out = open(tmp_path / f"node{node}.log", "w")
        nodes.append((subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env=environment(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NODE_RANK=str(node),
                            LOCAL_RANK="0", WORLD_SIZE="2")), out))
    try:
        codes = [proc.wait(timeout=600) for proc, _ in nodes]
    finally:
        for proc, out in nodes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            out.close()
    output = "".join((tmp_path / f"node{node}.log").read_text() for node in (0, 1))
    assert codes == [0, 0], output[-4000:]
    assert "2 node(s) x 1 device(s)); global batch 4 MoMs" in output
    assert_one_writer(output, exp)
    assert_ranks_agree(output, ranks=2)
    assert_disjoint_shards(steps(output), ranks=2, epoch_size=8)
