"""Break the code on purpose, one edit at a time, and see whether a test fails (EXPERIMENTS.md,
"breaking the code on purpose").

    python experiments/breakage_sweep.py                     # every edit against the fast tier
    python experiments/breakage_sweep.py --all               # an edit the fast tier misses: the full suite too
    python experiments/breakage_sweep.py --only "gate inverted" --pytest-args "tests/test_objective.py"
    python experiments/breakage_sweep.py --list

Each edit replaces one piece of text, which must occur exactly once, in a copy of the checkout
(the files git tracks or would track), then runs the fast tier there (`python -m pytest -q -x -m
"not slow"`, less the tests of experiments/); with --all, an edit that passes it is run again
through the whole suite, less the same tests (set DFV_DATA for the real-data tests). Prints one
line per edit: caught (fast), caught (full) or passed, and the first test that failed.
"""
import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Both tiers leave out the tests of the experiments' own scripts (this sweep among them): they test
# no part of the method, the sweep's own test would run a sweep inside every copy, and its check
# that each edit applies fails in a copy where one already has.
NOT_EXPERIMENTS = "--ignore=tests/test_breakage_sweep.py --ignore=tests/test_experiments.py"
FAST_TIER = f'-m "not slow" {NOT_EXPERIMENTS}'


class Edit(NamedTuple):
    name: str
    group: str
    path: str
    old: str
    new: str


EDITS = [
    # the pairwise objective
    Edit("generator target flipped", "objective", "objective.py",
         "same = torch.full((2 * size,), SAME,", "same = torch.full((2 * size,), DIFFERENT,"),
    Edit("discriminator real target flipped", "objective", "objective.py",
         "target = torch.cat([torch.full((size,), SAME,", "target = torch.cat([torch.full((size,), DIFFERENT,"),
    Edit("discriminator fake target flipped", "objective", "objective.py",
         "torch.full((size,), DIFFERENT, device=x1.device)])", "torch.full((size,), SAME, device=x1.device)])"),
    Edit("partner reconstruction dropped", "objective", "objective.py",
         "reconstruction = F.mse_loss(rebuilt[:size], x1) + F.mse_loss(rebuilt[size:], x1)",
         "reconstruction = F.mse_loss(rebuilt[:size], x1)"),
    Edit("autoencoder KL dropped", "objective", "objective.py",
         "loss = reconstruction + args.kl_weight * kl", "loss = reconstruction"),
    Edit("generator KL dropped", "objective", "objective.py",
         "loss = adversarial + args.kl_weight * kl", "loss = adversarial"),
    Edit("prior fake dropped", "objective", "objective.py",
         "adversarial = 2 * F.cross_entropy(logits, same)", "adversarial = 2 * F.cross_entropy(logits[:size], same[:size])"),
    Edit("generator update dropped", "objective", "objective.py",
         "    update(optimizer, loss, finite)\n    discriminator.requires_grad_(True)",
         "    discriminator.requires_grad_(True)"),
    Edit("generator fakes with x1's s", "objective", "objective.py",
         "s3 = class_code[size:]", "s3 = class_code[:size]"),
    Edit("discriminator fake with x1's s", "objective", "objective.py",
         "fake = decoder(mu[:size], class_code[size:])", "fake = decoder(mu[:size], class_code[:size])"),
    Edit("real pair not of one class", "objective", "objective.py",
         "logits = discriminator(torch.cat([x2, partner]),", "logits = discriminator(torch.cat([x1, partner]),"),
    Edit("gate inverted", "objective", "objective.py",
         "stepped = finite & (mean_accuracy < args.disc_gate)", "stepped = finite & (mean_accuracy >= args.disc_gate)"),
    Edit("autoencoder decodes mu, not the sample", "objective", "objective.py",
         "z1, kl = style_code(mu[:size], logvar[:size], batch.noise, args), kl_term(mu[:size], logvar[:size], x1, args)"
         "\n    rebuilt",
         "z1, kl = mu[:size], kl_term(mu[:size], logvar[:size], x1, args)\n    rebuilt"),
    Edit("one generator step instead of two", "objective", "objective.py",
         "for batch in iteration.generator]", "for batch in iteration.generator[:1]]"),
    Edit("discriminator left frozen", "objective", "objective.py",
         "    update(optimizer, loss, finite)\n    discriminator.requires_grad_(True)",
         "    update(optimizer, loss, finite)"),
    Edit("generator gradient cut at the fakes", "objective", "objective.py",
         "logits = discriminator(torch.cat([x3, x3]), fakes)", "logits = discriminator(torch.cat([x3, x3]), fakes.detach())"),
    Edit("sigma = exp(logvar)", "objective", "utils.py",
         "return mu + torch.exp(0.5 * logvar) * noise", "return mu + torch.exp(logvar) * noise"),
    Edit("KL not divided by the pixels", "objective", "utils.py",
         "/ (mu.shape[0] * image_numel)", "/ mu.shape[0]"),
    Edit("gradients accumulate across updates (no zero_grad)", "objective", "objective.py",
         "    optimizer.zero_grad(set_to_none=True)\n    loss.backward()", "    loss.backward()"),
    Edit("prior drawn uniform in [0, 1)", "objective", "objective.py",
         "None if args.no_reparam else normal(), normal())",
         "None if args.no_reparam else normal(), torch.rand(batch, args.style_dim))"),
    Edit("discriminator runs --generator-times steps", "objective", "objective.py",
         "args.generator_times, args.discriminator_times", "args.generator_times, args.generator_times"),
    Edit("generator steps use the autoencoder's optimizer", "objective", "objective.py",
         "generator_step(nets, optimizers[\"generator\"]", "generator_step(nets, optimizers[\"autoencoder\"]"),
    # the authors' class objective
    Edit("class: real target 1, not --real-target", "class objective", "objective.py",
         "F.binary_cross_entropy_with_logits(real, torch.full_like(real, args.real_target))",
         "F.binary_cross_entropy_with_logits(real, torch.ones_like(real))"),
    Edit("class: both fakes shown with y3", "class objective", "objective.py",
         "logits = discriminator(fakes, torch.cat([batch.labels, batch.other_labels]))",
         "logits = discriminator(fakes, torch.cat([batch.other_labels, batch.other_labels]))"),
    Edit("class: swap term dropped", "class objective", "objective.py",
         "+ args.swap_weight * swap", ""),
    Edit("class: x3 not reconstructed", "class objective", "objective.py",
         "reconstruction = authors_mse(rebuilt, x)", "reconstruction = authors_mse(rebuilt[:2 * size], x[:2 * size])"),
    Edit("class: squared errors in [0, 1], not the authors' [-1, 1]", "class objective", "objective.py",
         "return F.mse_loss(2 * decoded - 1, 2 * images - 1)", "return F.mse_loss(decoded, images)"),
    Edit("class: KL not scaled by 6", "class objective", "objective.py",
         "CLASS_KL_SCALE = 6", "CLASS_KL_SCALE = 1"),
    Edit("class: discriminator's real images x1, not x2", "class objective", "objective.py",
         "real = discriminator(torch.cat([batch.partners, batch.others]), labels)",
         "real = discriminator(torch.cat([batch.images, batch.others]), labels)"),
    Edit("class: first class table not added", "class objective", "networks.py",
         "h = self.to_half(F.pad(images, self.padding, value=self.padding_value)) + self.class_map(0, labels)",
         "h = self.to_half(F.pad(images, self.padding, value=self.padding_value))"),
    Edit("class: x2 not of x1's class", "class objective", "objective.py",
         "draw_partners(anchors, data.labels, index, sampler)", "draw_by_uniform_class(batch, index, sampler)"),
    Edit("class: x3 from the stream, classes at their frequency", "class objective", "objective.py",
         "draw_by_uniform_class(batch, index, sampler)])", "draw_indices(stream, batch, sampler)])"),
    Edit("class: discriminator padded black", "class objective", "networks.py",
         "self.padding_value = 0.5", "self.padding_value = 0.0"),
    Edit("class: batch-norm scales start at 1", "class objective", "networks.py",
         "nn.init.uniform_(norm.weight, 0, 1)", "nn.init.ones_(norm.weight)"),
    # an iteration on the device
    Edit("the gate read on the host", "device", "objective.py",
         "stepped = finite & (mean_accuracy < args.disc_gate)",
         "stepped = finite & bool(mean_accuracy < args.disc_gate)"),
    Edit("a non-finite update lands", "device", "objective.py",
         "optimizer.found_inf = (~apply).float()", "optimizer.found_inf = torch.zeros(())"),
    # --precision bf16
    Edit("bf16: a cast cache across the iteration's updates", "device", "train.py",
         "enabled=args.precision == \"bf16\", cache_enabled=False", "enabled=args.precision == \"bf16\""),
    Edit("bf16: the flag ignored", "device", "train.py",
         "enabled=args.precision == \"bf16\", cache_enabled=False", "enabled=False, cache_enabled=False"),
    Edit("bf16: the decoder returns bfloat16", "device", "networks.py",
         "return self.deconv(h.view(-1, *self.start_shape)).float()", "return self.deconv(h.view(-1, *self.start_shape))"),
    # the data
    Edit("partner may be the anchor", "data", "data_loader.py",
         "offset = 1 + (uniform * (count - 1)).long()", "offset = (uniform * count).long()"),
    Edit("partner of any class", "data", "data_loader.py",
         "index[\"order\"][index[\"start\"][label] + (index[\"rank\"][anchors] + offset) % count]",
         "index[\"order\"][(index[\"start\"][label] + index[\"rank\"][anchors] + offset) % len(labels)]"),
    Edit("batches shuffled against their roles", "data", "objective.py",
         "gather_images(data, indices, sampler, args).split(",
         "gather_images(data, indices.flatten()[torch.randperm(indices.numel(), device=indices.device)]"
         ".view(indices.shape), sampler, args).split("),
    Edit("val split from the first digits", "data", "data_loader.py",
         "kept = slice(len(labels) - val_size, None) if split == \"val\" else slice(0, len(labels) - val_size)",
         "kept = slice(0, val_size) if split == \"val\" else slice(val_size, None)"),
    Edit("the tail of a pass dropped", "data", "data_loader.py",
         "order, position = torch.cat([order[position:], fresh]), 0", "order, position = fresh, 0"),
    # resume
    Edit("RNG state not restored", "resume", "train.py",
         "    set_rng_state(resume[\"rng\"], training.sampler)\n", ""),
    Edit("typed --lr ignored on resume", "resume", "train.py",
         "group.update(lr=args.lr, betas=(args.beta1, args.beta2))", "group.update(betas=(args.beta1, args.beta2))"),
    # evaluation
    Edit("s probe reads z mean", "evaluation", "probes.py",
         "    if name == \"s\":\n        return codes[\"s\"][indices]", "    if name == \"s\":\n        return codes[\"mu\"][indices]"),
    Edit("z sampled is the mean", "evaluation", "probes.py",
         "return sample_style(mu, codes[\"logvar\"][indices], torch.randn(mu.shape, generator=noise, device=mu.device))",
         "return mu"),
    Edit("z sampled scored on z mean", "evaluation", "probes.py",
         "if name == \"z_sampled\" and codes[\"logvar\"] is not None:",
         "if name == \"z_sampled\" and codes[\"logvar\"] is not None and torch.is_grad_enabled():"),
    Edit("probes scored on their training codes", "evaluation", "probes.py",
         "accuracy(group, probe_inputs(eval_codes), eval_labels)", "accuracy(group, probe_inputs(train_codes), train_labels)"),
    Edit("probes not reseeded", "evaluation", "probes.py",
         "        seed_everything(args.seed)  # init and z noise", "        pass  # init and z noise"),
    Edit("z sampled noise not the stream it has alone", "evaluation", "probes.py",
         "noise = torch.Generator(device).set_state(", "noise = torch.Generator(device).manual_seed(1) or ("),
    Edit("swap decodes (mu_j, s_i)", "evaluation", "probes.py",
         "swap = decoder(codes[\"mu\"][i], codes[\"s\"][j])", "swap = decoder(codes[\"mu\"][j], codes[\"s\"][i])"),
    Edit("swap pairs may share a class", "evaluation", "probes.py",
         "    while same.any():", "    while False:"),
    Edit("i's share counted against j's labels", "evaluation", "probes.py",
         "\"labelled_z_class\": (predicted == labels[first])", "\"labelled_z_class\": (predicted == labels[second])"),
    Edit("style not standardized within classes", "evaluation", "probes.py",
         "scores[members] = (values[members] - values[members].mean()) / spread", "scores[members] = values[members]"),
    Edit("encoder left in train mode", "evaluation", "probes.py",
         "    encoder.eval()\n    starts", "    encoder.train()\n    starts"),
    Edit("within-class probe split reversed", "evaluation", "evaluate.py",
         "return subset(train, kept), subset(train, held)", "return subset(train, held), subset(train, kept)"),
    Edit("swap judge trained on the eval split", "evaluation", "probes.py",
         "fit(judge, lambda i: to_float(probe_train.images[i]), probe_train.labels,",
         "fit(judge, lambda i: to_float(probe_eval.images[i]), probe_eval.labels,"),
    Edit("chance from the eval split's majority", "evaluation", "probes.py",
         "(test_labels == torch.bincount(train_labels).argmax())", "(test_labels == torch.bincount(test_labels).argmax())"),
]


def checkout_files():
    """The files git tracks or would track (untracked ones that are not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.splitlines()
    return [path for path in listed if os.path.isfile(os.path.join(ROOT, path))]


def broken_copy(edit, folder):
    """A copy of the checkout in `folder` with `edit` applied; its text must occur exactly once."""
    for path in checkout_files():
        os.makedirs(os.path.join(folder, os.path.dirname(path)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, path), os.path.join(folder, path))
    target = os.path.join(folder, edit.path)
    with open(target) as handle:
        text = handle.read()
    if text.count(edit.old) != 1:
        raise SystemExit(f"edit '{edit.name}': its text occurs {text.count(edit.old)} times in {edit.path}, "
                         f"not once; update it in {os.path.relpath(__file__, ROOT)}")
    with open(target, "w") as handle:
        handle.write(text.replace(edit.old, edit.new))


def first_failure(folder, pytest_args, timeout=600):
    """The first test that fails in `folder` ("FAILED tests/...::name" or an error), or None. An edit
    can make a test loop forever: a run past `timeout` seconds counts as failed."""
    # the copy lives elsewhere: data folders named relative to here must still be found from there
    env = {**os.environ, **{name: os.path.abspath(os.environ[name])
                            for name in ("DFV_DATA", "DFV_PUBLISHED") if name in os.environ}}
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *pytest_args],
                                cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"no result in {timeout} s (a test hangs)"
    if result.returncode == 0:
        return None
    summary = [line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return summary[0].split(" - ")[0] if summary else f"pytest exit {result.returncode}"


def verdict(edit, args):
    with tempfile.TemporaryDirectory() as folder:
        broken_copy(edit, folder)
        failure = first_failure(folder, shlex.split(args.pytest_args))
        if failure:
            return "caught (fast)", failure
        failure = first_failure(folder, shlex.split(NOT_EXPERIMENTS)) if args.all else None
        if failure:
            return "caught (full)", failure
    return "passed", ""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="run the whole suite on an edit the fast tier misses")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these edits only, by name")
    parser.add_argument("--pytest-args", default=FAST_TIER, help="the first tier's pytest arguments")
    parser.add_argument("--list", action="store_true", help="list the edits and stop")
    args = parser.parse_args()
    edits = [edit for edit in EDITS if not args.only or edit.name in args.only]
    unknown = set(args.only or ()) - {edit.name for edit in EDITS}
    if unknown:
        parser.error(f"no edit named {', '.join(sorted(unknown))}; --list shows them")
    for edit in edits:
        if args.list:
            print(f"{edit.group:16s} {edit.name}")
            continue
        start = time.time()
        outcome, failure = verdict(edit, args)
        print(f"{outcome:14s} {edit.group:16s} {edit.name} ({time.time() - start:.0f} s) {failure}", flush=True)


if __name__ == "__main__":
    main()
