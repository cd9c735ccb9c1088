"""Evaluation under torch.distributed: two gloo ranks on CPU give the single process's results."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from PIL import Image

from clipag.cli.main import main
from clipag.distributed import World


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_shards_cover_every_item_once():
    shards = [World(rank=r, size=3).shard(8) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(8))
    assert [len(s) for s in shards] == [3, 3, 2]


def _gather_rank(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    from clipag.distributed import close_world, gather_shards, init_world
    world = init_world("cpu")
    try:
        rows = torch.arange(7 * 2, dtype=torch.float32).view(7, 2)[world.shard(7)]  # this rank's rows
        torch.save(gather_shards(rows, world, 7), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        close_world()


def test_gather_shards_restores_order_on_every_rank(tmp_path):
    import torch.multiprocessing as mp
    mp.spawn(_gather_rank, args=(free_port(), str(tmp_path)), nprocs=2)
    for rank in range(2):  # 7 rows: rank 0 holds 4, rank 1 holds 3
        assert torch.equal(torch.load(tmp_path / f"rank{rank}.pt"), torch.arange(14.0).view(7, 2))


@pytest.fixture
def coloured_run(tmp_path):
    """Five images (an odd count, so the shards differ in length) with their prompts, as a CSV."""
    lines = ["image,prompt"]
    for i, (prompt, colour) in enumerate([("red", (230, 0, 0)), ("green", (0, 230, 0)), ("blue", (0, 0, 230)),
                                          ("dark red", (120, 0, 0)), ("white", (250, 250, 250))]):
        Image.new("RGB", (32, 32), colour).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png,{prompt}")
    (tmp_path / "items.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "items.csv"


def test_torchrun_evaluate_matches_one_process(tmp_path, coloured_run, tiny_checkpoint):
    model = f"clipag-tiny:{tiny_checkpoint[0]}"
    # one image per forward pass, so that both runs encode with the same shapes, bit for bit
    args = ["evaluate", str(coloured_run), "--evaluator", model, "--top-k", "1", "2", "--batch-size", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(free_port()), "-m", "clipag", *args, "--out", str(tmp_path / "two")]
    done = subprocess.run(torchrun, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("r_precision@2") == 1  # only rank 0 prints
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks run, so that reductions add in the same order
    try:
        assert main([*args, "--out", str(tmp_path / "one")]) == 0
    finally:
        torch.set_num_threads(threads)
    two, one = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("two", "one"))
    assert two["ranks"] == 2 and one["ranks"] == 1
    assert [row["image"] for row in two["items"]] == [row["image"] for row in one["items"]]
    for a, b in zip(two["items"], one["items"]):
        assert a[f"{model} similarity"] == b[f"{model} similarity"]
        assert a[f"{model} rank"] == b[f"{model} rank"]
    assert two["summary"] == one["summary"]


def _robustness_rank(rank, port, checkpoint, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank), HF_HUB_OFFLINE="1")
    torch.set_num_threads(1)
    from clipag.distributed import close_world, init_world
    world = init_world("cpu")
    try:
        result = _robustness(checkpoint, world)
        (open(os.path.join(out_dir, f"rank{rank}.json"), "w")).write(json.dumps(result))
    finally:
        close_world()


def _robustness(checkpoint, world=World()):
    from clipag.models.guide import Guide
    from clipag.measure.robustness import RobustnessConfig, evaluate_robustness
    torch.manual_seed(0)
    images, labels = torch.rand(9, 3, 32, 32), torch.randint(0, 3, (9,))
    guide = Guide.from_pretrained(f"clipag-tiny:{checkpoint}", device="cpu")
    config = RobustnessConfig(eps=[1e-6, 3.0], attack_steps=3)
    return evaluate_robustness(guide, images, labels, ["red", "green", "blue"], config, world)


def test_robustness_sums_counts_over_ranks(tmp_path, tiny_checkpoint):
    import torch.multiprocessing as mp
    mp.spawn(_robustness_rank, args=(free_port(), str(tiny_checkpoint[0]), str(tmp_path)), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    single = _robustness(str(tiny_checkpoint[0]))
    assert ranks[0] == ranks[1]  # every rank reports the merged accuracies
    assert ranks[0]["clean"] == pytest.approx(single["clean"])  # 9 images: counts, not shard means
    assert ranks[0]["pgd l2 1e-06"] == pytest.approx(single["clean"])
    assert ranks[0]["pgd l2 3"] <= ranks[0]["clean"]
