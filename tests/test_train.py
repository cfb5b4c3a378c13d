"""The model, the pairing, the three training phases and train.py end to end."""
import csv
import json
import os
from types import SimpleNamespace

import pytest
import torch

import objective
import train
from conftest import REAL_DATA, run_script
from data_loader import class_index, draw_indices, draw_partners, new_stream, random_shift
from networks import Classifier, build_models
from utils import kl_divergence, load_checkpoint


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64), (1, 64, 64)])
def test_network_shapes(shape):
    encoder, decoder, discriminator = build_models(shape, style_dim=7, class_dim=5)
    images = torch.rand(3, *shape)
    mu, logvar, class_code = encoder(images)
    assert mu.shape == logvar.shape == (3, 7) and class_code.shape == (3, 5)
    rebuilt = decoder(mu, class_code)
    assert rebuilt.shape == images.shape
    assert rebuilt.min() >= 0 and rebuilt.max() <= 1  # sigmoid output
    assert discriminator(images, rebuilt).shape == (3, 2)
    assert Classifier(7, 10)(mu).shape == (3, 10)


def test_mnist_layers_match_published():
    encoder, decoder, discriminator = build_models((1, 28, 28), 16, 16)
    assert encoder.style_mu.in_features == 256 and discriminator.output.in_features == 512
    assert decoder.style_input.out_features == decoder.class_input.out_features == 256
    # published init: N(0, 0.05) for convs and linears, zero bias
    assert abs(encoder.features[0].weight.std().item() - 0.05) < 0.01
    assert encoder.style_mu.bias.abs().max() == 0


def test_partners_share_class_and_differ():
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 1, 1, 3])  # class 2 and 3 have one image each
    index = class_index(labels, 4)
    generator = torch.Generator().manual_seed(0)
    anchors = torch.arange(len(labels)).repeat(200)
    partners = draw_partners(anchors, labels, index, generator)
    assert torch.equal(labels[partners], labels[anchors])
    alone = (labels[anchors] == 2) | (labels[anchors] == 3)
    assert torch.equal(partners[alone], anchors[alone])  # a lone image can only pair with itself
    assert (partners[~alone] != anchors[~alone]).all()
    # every other member of the class is drawn, not just a neighbour
    drawn = set(partners[anchors == 0].tolist())
    assert drawn == {2, 5}


def test_every_image_once_per_pass():
    generator = torch.Generator().manual_seed(0)
    stream = new_stream(10, generator)
    drawn = torch.cat([draw_indices(stream, 3, generator) for _ in range(10)])  # 3 passes of 10
    for p in range(3):
        assert sorted(drawn[10 * p: 10 * (p + 1)].tolist()) == list(range(10))
    assert not torch.equal(drawn[:10], drawn[10:20])  # each pass is reshuffled


def test_sampling_is_seeded():
    def draws(seed):
        generator = torch.Generator().manual_seed(seed)
        stream = new_stream(50, generator)
        return torch.cat([draw_indices(stream, 7, generator) for _ in range(5)])
    assert torch.equal(draws(1), draws(1)) and not torch.equal(draws(1), draws(2))


def test_kl_matches_closed_form():
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    assert kl_divergence(mu, logvar, 10).item() == 0
    mu = torch.ones(4, 3)  # KL = 0.5 * mu^2 per dimension: 12 * 0.5 = 6, over B * numel = 40
    assert kl_divergence(mu, logvar, 10).item() == pytest.approx(6 / 40)


def test_draw_iteration_names_each_batch_by_its_role(mnist_root):
    args, _ = train.parse_args(["--data-root", mnist_root, "--batch-size", "4", "--discriminator-times", "3"])
    data = train.load_dataset(args, "train")
    training = train.setup_training(data, args)
    batches = objective.draw_pair_iteration(data, training.stream, training.index, training.sampler, args)
    assert len(batches.generator) == 2 and len(batches.discriminator) == 3  # --generator-times, --discriminator-times

    def label_of(images):  # each drawn image is a dataset image: find it by its pixels
        flat = data.images.flatten(1).float() / 255
        return torch.stack([data.labels[(flat == image.flatten()).all(1).nonzero()[0, 0]] for image in images])
    ae = batches.autoencoder
    assert torch.equal(label_of(ae.partners), label_of(ae.images))  # x1' shares x1's class
    for batch in batches.discriminator:
        assert torch.equal(label_of(batch.partners), label_of(batch.images))  # x2' shares x2's class
    assert ae.noise.shape == batches.generator[0].prior.shape == (4, 16)
    # every image and noise draw is its own: no two roles share a tensor
    drawn = [ae.images, ae.partners] + [x for b in batches.generator for x in b[:2]] + \
        [x for b in batches.discriminator for x in b]
    assert len({tuple(x.flatten()[:50].tolist()) for x in drawn}) == len(drawn)
    noises = [ae.noise] + [x for b in batches.generator for x in b[2:]]
    assert len({tuple(x.flatten().tolist()) for x in noises}) == len(noises)
    args.no_reparam = True
    plain = objective.draw_pair_iteration(data, training.stream, training.index, training.sampler, args)
    assert plain.autoencoder.noise is None and plain.generator[0].noise is None


@pytest.mark.parametrize("mode", ["pair", "class"])
def test_z_noise_and_the_prior_are_standard_normal(mnist_root, mode):
    args, _ = train.parse_args(["--data-root", mnist_root, "--discriminator", mode, "--batch-size", "64"])
    data = train.load_dataset(args, "train")
    training = train.setup_training(data, args)
    draws = {"noise": [], "prior": []}
    for _ in range(20):
        batches = objective.OBJECTIVES[mode].draw(data, training.stream, training.index, training.sampler, args)
        for batch in [batches.autoencoder, *batches.generator] if mode == "pair" else [batches.batch]:
            draws["noise"].append(batch.noise.flatten())
            if mode == "pair" and hasattr(batch, "prior"):
                draws["prior"].append(batch.prior.flatten())
    for name, values in draws.items():
        if not values:
            continue
        values = torch.cat(values)  # at least 20,000 draws: the moments and the tail within a few standard errors
        assert abs(values.mean()) < 0.03 and abs(values.std() - 1) < 0.03, name
        assert abs((values < -1).float().mean() - 0.1587) < 0.015, name  # P(N(0, 1) < -1)


def test_each_step_gets_its_own_optimizer_and_count(monkeypatch):
    received = []
    for name in ("autoencoder", "generator", "discriminator"):
        def step(nets, optimizer, batch, args, name=name):
            received.append((name, optimizer))
            return {"reconstruction": torch.tensor(0.0), "kl": torch.tensor(0.0), "generator": torch.tensor(0.0),
                    "discriminator": torch.tensor(0.0), "disc_accuracy": torch.tensor(0.0),
                    "disc_stepped": torch.tensor(0.0), "skipped_updates": torch.tensor(0.0)}
        monkeypatch.setattr(objective, f"{name}_step", step)
    optimizers = {name: object() for name in ("autoencoder", "generator", "discriminator")}
    iteration = objective.PairIteration(None, None, [None] * 2, [None] * 3)
    objective.pair_iteration(None, optimizers, iteration, None)
    assert [name for name, _ in received] == ["autoencoder"] + ["generator"] * 2 + ["discriminator"] * 3
    assert all(optimizer is optimizers[name] for name, optimizer in received)


def test_iteration_logs_means_over_steps_and_counts_skips_apart_from_the_gate(monkeypatch):
    def logs(**values):
        return {name: torch.tensor(value) for name, value in values.items()}

    def discriminator(loss, accuracy, stepped, skipped):
        return logs(discriminator=loss, disc_accuracy=accuracy, disc_stepped=stepped, skipped_updates=skipped)
    discriminator_logs = iter([discriminator(1.0, 0.5, 1.0, 0.0), discriminator(3.0, 0.9, 0.0, 0.0),
                               discriminator(5.0, 0.7, 0.0, 1.0)])  # stepped, gate closed, non-finite
    generator_logs = iter([logs(generator=2.0, skipped_updates=1.0), logs(generator=4.0, skipped_updates=0.0)])
    monkeypatch.setattr(objective, "autoencoder_step",
                        lambda *_: logs(reconstruction=0.25, kl=0.5, skipped_updates=0.0))
    monkeypatch.setattr(objective, "generator_step", lambda *_: next(generator_logs))
    monkeypatch.setattr(objective, "discriminator_step", lambda *_: next(discriminator_logs))
    iteration = objective.PairIteration(torch.zeros(1), None, [None, None], [None, None, None])
    optimizers = dict.fromkeys(["autoencoder", "generator", "discriminator"])
    row, skips = objective.pair_iteration(None, optimizers, iteration, None)
    assert dict(zip(objective.PAIR_COLUMNS, row.tolist())) == pytest.approx(
        {"reconstruction": 0.25, "kl": 0.5, "generator": 3.0, "discriminator": 3.0, "disc_accuracy": 0.7,
         "disc_stepped": 1 / 3, "skipped_updates": 2.0})
    assert skips.tolist() == [0.0, 1.0, 1.0]  # per optimizer: autoencoder, generator, discriminator


def test_draw_class_iteration_gives_three_groups_x2_of_x1s_class(mnist_root):
    args, _ = train.parse_args(["--data-root", mnist_root, "--discriminator", "class", "--batch-size", "6"])
    data = train.load_dataset(args, "train")
    training = train.setup_training(data, args)
    drawn = objective.draw_class_iteration(data, training.stream, training.index, training.sampler, args)
    batch = drawn.batch
    first, partners, others = drawn.indices
    assert torch.equal(data.labels[partners], data.labels[first]) and (partners != first).all()
    assert torch.equal(batch.labels, data.labels[first]) and torch.equal(batch.other_labels, data.labels[others])
    for images, indices in [(batch.images, first), (batch.partners, partners), (batch.others, others)]:
        assert torch.equal(images, data.images[indices].float() / 255)
    assert len(set(first.tolist())) == 6  # x1 from the stream of passes: all different
    assert batch.noise.shape == (6, 7, 16) and len({tuple(row.tolist()) for row in batch.noise[0]}) == 7


def test_class_iteration_draws_x3_by_uniform_class_and_x1_by_data_frequency():
    labels = torch.tensor([0] * 90 + [2] * 10)  # class 1 has no image
    data = SimpleNamespace(images=torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1), labels=labels,
                           image_shape=(1, 1, 1))
    args = SimpleNamespace(batch_size=50, shift=0, no_reparam=True, style_dim=2)
    sampler = torch.Generator().manual_seed(0)
    stream, index = new_stream(100, sampler), class_index(labels, 3)
    drawn = torch.cat([objective.draw_class_iteration(data, stream, index, sampler, args).indices
                       for _ in range(40)], dim=1)
    first, partners, others = labels[drawn]
    assert first.eq(0).float().mean() == 0.9 and torch.equal(partners, first)
    assert (others != 1).all() and abs(others.eq(0).float().mean() - 0.5) < 0.03  # the authors' x3
    assert len(set(drawn[2][others == 2].tolist())) == 10  # every image of the rare class


@pytest.mark.parametrize("argv, fragment", [
    (["--discriminator", "class", "--disc-gate", "0.5"], "--disc-gate belongs to --discriminator pair"),
    (["--discriminator", "class", "--generator-times", "3"], "--generator-times belongs to --discriminator pair"),
    (["--swap-weight", "2"], "--swap-weight belongs to --discriminator class"),
    (["--discriminator", "class", "--real-target", "1.5"], "--real-target must be in (0, 1]"),
])
def test_a_flag_of_the_other_discriminator_is_refused(argv, fragment, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(argv)
    assert fragment in capsys.readouterr().err


def test_each_discriminator_gets_its_own_defaults():
    pair, _ = train.parse_args([])
    authors, _ = train.parse_args(["--discriminator", "class"])
    assert (pair.batch_size, pair.lr, pair.kl_weight, pair.disc_gate, pair.generator_times) == (64, 1e-4, 1.0, 0.8, 2)
    assert pair.swap_weight is None and authors.disc_gate is None
    assert (authors.batch_size, authors.lr, authors.kl_weight, authors.reconstruction_weight, authors.swap_weight,
            authors.adversarial_weight, authors.real_target) == (16, 1e-2, 0.1, 0.5, 1.0, 0.01, 0.95)


HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


@pytest.mark.parametrize("mode", ["pair", "class"])
def test_an_iteration_never_reads_the_device(mnist_root, monkeypatch, mode):
    # A read from the device (.item(), bool(), .tolist(), .cpu(), ...) is a host sync on a GPU and
    # cannot be captured in a CUDA graph: drawing and training iterations must make none, even
    # while the gate flips and a non-finite loss is skipped. The gate is forced open (above any
    # accuracy) or closed (below any) per iteration, so that it flips on every machine's kernels.
    args, _ = train.parse_args(["--data-root", mnist_root, "--discriminator", mode, "--batch-size", "8"])
    gate_open = [True, True, True, False, True, False]
    data = train.load_dataset(args, "train")
    training = train.setup_training(data, args)
    run_iteration = train.iteration_runner(training, args)
    draw = objective.OBJECTIVES[mode].draw
    outputs = []

    def refuse(name):
        def read(*_, **__):
            raise AssertionError(f"Tensor.{name} read the device inside an iteration")
        return read
    with monkeypatch.context() as patch:
        for name in HOST_READS:
            patch.setattr(torch.Tensor, name, refuse(name))
        for iteration in range(6):
            if mode == "pair":
                args.disc_gate = 2.0 if gate_open[iteration] else 0.0
            batches = draw(data, training.stream, training.index, training.sampler, args)
            if iteration == 2:  # a non-finite loss: skipped on the device
                objective.tensors_of(batches)[1].fill_(float("nan"))
            outputs.append(run_iteration(batches))
    rows = torch.stack([row for row, _ in outputs])
    skips = torch.stack([skip for _, skip in outputs])
    columns = objective.OBJECTIVES[mode].columns
    assert skips[2].sum() >= 1 and skips[[0, 1, 3, 4, 5]].sum() == 0
    assert rows[:, columns.index("skipped_updates")].tolist() == skips.sum(1).tolist()
    if mode == "pair":  # the discriminator stepped exactly where its gate was open (2 is skipped)
        stepped = rows[:, columns.index("disc_stepped")].tolist()
        assert [stepped[i] for i in (0, 1, 3, 4, 5)] == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert all(torch.isfinite(p).all() for net in training.nets for p in net.parameters())


def test_bf16_steps_each_see_the_weights_the_step_before_left(mnist_root):
    # --precision bf16 runs the networks under bfloat16 autocast. One iteration holds four updates,
    # so a cast cached across the iteration would hand the generator steps the bfloat16 weights
    # from before the autoencoder's update: the iteration must equal its steps run one by one, each
    # in an autocast of its own. It must also differ from float32 (autocast is on), but not by much.
    args, _ = train.parse_args(["--data-root", mnist_root, "--batch-size", "8", "--precision", "bf16",
                                "--disc-gate", "1.0", "--device", "cpu"])
    data = train.load_dataset(args, "train")

    def weights_after(run):
        torch.manual_seed(0)
        training = train.setup_training(data, args)
        torch.manual_seed(1)
        batches = objective.draw_pair_iteration(data, training.stream, training.index, training.sampler, args)
        run(training, batches)
        return torch.cat([p.detach().flatten() for net in training.nets for p in net.parameters()])

    def iteration(training, batches):
        train.iteration_runner(training, args)(batches)

    def step_by_step(training, batches):
        steps = ([(objective.autoencoder_step, "autoencoder", batches.autoencoder)]
                 + [(objective.generator_step, "generator", batch) for batch in batches.generator]
                 + [(objective.discriminator_step, "discriminator", batch) for batch in batches.discriminator])
        for step, name, batch in steps:
            with torch.autocast("cpu", torch.bfloat16):
                step(training.step_nets, training.optimizers[name], batch, args)

    def in_float32(training, batches):
        with torch.autocast("cpu", enabled=False):
            objective.pair_iteration(training.step_nets, training.optimizers, batches, args)
    bf16 = weights_after(iteration)
    assert torch.equal(bf16, weights_after(step_by_step))
    fp32 = weights_after(in_float32)
    assert not torch.equal(bf16, fp32) and (bf16 - fp32).abs().max() < 1e-3  # Adam's steps are lr 1e-4


def test_networks_return_float32_under_autocast():
    encoder, decoder, discriminator = build_models((3, 64, 64), 7, 5)
    images = torch.rand(2, 3, 64, 64)
    with torch.autocast("cpu", torch.bfloat16):
        mu, logvar, class_code = encoder(images)
        rebuilt = decoder(mu, class_code)
        logits = discriminator(images, rebuilt)
        assert encoder.features[0](images).dtype == torch.bfloat16  # the convolutions do run in bfloat16
    assert all(t.dtype == torch.float32 for t in (mu, logvar, class_code, rebuilt, logits))


def test_an_update_applies_its_own_loss_gradient_only():
    # two optimizers share the encoder and decoder: a gradient left over from the other one's
    # step must not leak into this one
    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([weight], lr=1.0, fused=True)
    objective.update(optimizer, (weight * torch.tensor([1.0, 2.0])).sum(), torch.tensor(True))
    objective.update(optimizer, (weight * torch.tensor([3.0, 0.0])).sum(), torch.tensor(True))
    assert weight.tolist() == [-4.0, -2.0]


def test_shift_moves_each_image_by_its_own_offset_within_the_limit():
    images = torch.zeros(64, 1, 9, 9)
    images[:, 0, 4, 4] = 1  # one bright pixel in the centre: its new place is the offset
    shifted = random_shift(images, 2, torch.Generator().manual_seed(0))
    rows, cols = torch.nonzero(shifted[:, 0])[:, 1:].T - 4
    assert shifted.shape == images.shape and shifted.sum() == 64  # moved, never lost
    assert rows.abs().max() == 2 and cols.abs().max() == 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # offsets differ between images
    assert torch.equal(random_shift(images, 0, torch.Generator()), images)


def read_log(run):
    with open(os.path.join(run, "log.csv"), newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_fixture_run_writes_every_output(mnist_root, tmp_path):
    run = tmp_path / "run"
    result = run_script("train.py", "--data-root", mnist_root, "--out", run, "--batch-size", 16,
                        "--epochs", 2, "--log-every", 5, "--save-every", 1)
    assert "epoch 2/2" in result.stdout
    config = json.loads((run / "config.json").read_text())
    assert config["style_dim"] == 16 and config["image_shape"] == [1, 28, 28] and "torch" in config["versions"]
    rows = read_log(run)
    assert [int(r["step"]) for r in rows] == list(range(1, 2 * 12 + 1))  # 200 images // 16 = 12 per epoch
    assert {r["disc_stepped"] for r in rows} <= {"0.0", "1.0"}
    assert all(0 <= float(r["disc_accuracy"]) <= 1 for r in rows)
    state = load_checkpoint(str(run))
    assert state["step"] == 24 and state["epoch"] == 2
    assert {"autoencoder", "generator", "discriminator"} == state["optimizers"].keys()
    assert any(name.startswith("events.") for name in os.listdir(run))
    assert (run / "swap_grid.png").stat().st_size > 0


def final_weights(run):
    state = load_checkpoint(str(run))
    return {f"{net}.{k}": v for net in ("encoder", "decoder", "discriminator") for k, v in state[net].items()}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["pair", "class"])
def test_resume_gives_identical_weights(mnist_root, tmp_path, mode):
    common = ["--data-root", mnist_root, "--batch-size", 16, "--log-every", 4, "--discriminator", mode]
    run_script("train.py", *common, "--out", tmp_path / "straight", "--epochs", 2)
    run_script("train.py", *common, "--out", tmp_path / "split", "--epochs", 1)
    run_script("train.py", "--resume", tmp_path / "split", "--epochs", 2)
    straight, split = final_weights(tmp_path / "straight"), final_weights(tmp_path / "split")
    assert all(torch.equal(straight[k], split[k]) for k in straight)
    assert read_log(tmp_path / "straight") == read_log(tmp_path / "split")


@pytest.mark.slow
def test_resume_applies_a_typed_learning_rate(mnist_root, tmp_path):
    run_script("train.py", "--data-root", mnist_root, "--out", tmp_path, "--batch-size", 16, "--max-iterations", 2)
    args, resume = train.parse_args(["--resume", str(tmp_path), "--lr", "3e-5", "--beta1", "0.9"])
    training = train.setup_training(train.load_dataset(args, "train"), args)
    assert train.restore(resume, training, args) == 2
    assert resume["optimizers"]["generator"]["param_groups"][0]["lr"] == 1e-4  # what the run was trained with
    for optimizer in training.optimizers.values():
        assert optimizer.param_groups[0]["lr"] == 3e-5 and optimizer.param_groups[0]["betas"] == (0.9, 0.999)
        assert optimizer.state  # the Adam moments are restored, not reset


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--shift", 2], ["--precision", "bf16"]])  # shifts draw from the saved sampler
def test_resume_mid_epoch_from_max_iterations(mnist_root, tmp_path, extra):
    common = ["--data-root", mnist_root, "--batch-size", 16, "--epochs", 1, *extra]
    run_script("train.py", *common, "--out", tmp_path / "straight")
    run_script("train.py", *common, "--out", tmp_path / "split", "--max-iterations", 5)
    run_script("train.py", "--resume", tmp_path / "split")
    straight, split = final_weights(tmp_path / "straight"), final_weights(tmp_path / "split")
    assert all(torch.equal(straight[k], split[k]) for k in straight)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_DATA, reason="set DFV_DATA to the shared data folder")
def test_real_mnist_reconstruction_falls(tmp_path):
    run_script("train.py", "--data-root", REAL_DATA, "--out", tmp_path, "--max-iterations", 100,
               "--log-every", 10)
    losses = [float(r["reconstruction"]) for r in read_log(tmp_path)]
    assert len(losses) == 100
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10  # 0.57 -> 0.40 in this run
