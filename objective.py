"""The method's objective in its two versions, side by side: the batches an iteration draws, each
loss as a pure function of the networks and one batch, and each step's update.

pair (the published PyTorch code; the default): the discriminator sees two images and judges
whether they share a class. One iteration = an autoencoder step, --generator-times generator steps
and --discriminator-times discriminator steps, each on freshly drawn batches; the discriminator
updates only while its accuracy is below --disc-gate.

class (the authors' Torch7 code): the discriminator sees one image and its class id and judges
real or fake. One iteration = one generator step (reconstruction, same-class swaps, fakes, KL)
and one discriminator step on that step's fakes, on batches of three groups x1, x2, x3.

Every decision inside an iteration stays on the device: a non-finite loss or a closed gate skips
its update there (fused Adam's found_inf, as torch.amp.GradScaler skips a step), and each step
returns its log entries as tensors. The host never waits on an iteration, so it can be replayed
as one CUDA graph.
"""
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from data_loader import draw_by_uniform_class, draw_indices, draw_partners, random_shift, to_float
from utils import average_gradients, global_mean, kl_divergence, sample_style

SAME, DIFFERENT = 1, 0  # the pair discriminator's classes, as published
# The authors' code weighs KL(z), averaged over images, by --kl-weight * 6 / (C*H*W); kl_divergence
# already divides by the pixels.
CLASS_KL_SCALE = 6


# ---------------------------------------------------------------------------------------------
# One iteration's batches, named by their role. Images are (B, C, H, W) in [0, 1]; noise and prior
# are N(0, I) draws of z's size; noise is None with --no-reparam.

class AutoencoderBatch(NamedTuple):
    images: torch.Tensor             # x1
    partners: torch.Tensor           # x1': another image of x1's class, row by row
    noise: Optional[torch.Tensor]    # eps of z1 = mu1 + sigma1 * eps


class GeneratorBatch(NamedTuple):
    style_images: torch.Tensor       # x1: z1 comes from it
    class_images: torch.Tensor       # x3: s3 comes from it; the fakes must pass as its class
    noise: Optional[torch.Tensor]    # eps of z1
    prior: torch.Tensor              # z ~ N(0, I) of the second fake, Dec(z, s3)


class DiscriminatorBatch(NamedTuple):
    style_images: torch.Tensor       # x1: the fake's z is its posterior mean
    images: torch.Tensor             # x2
    partners: torch.Tensor           # x2': real pair (x2, x2') "same", fake pair (x2', Dec(mu1, s2')) "different"


class PairIteration(NamedTuple):
    indices: torch.Tensor            # dataset index of every image drawn, for the non-finite report
    autoencoder: AutoencoderBatch
    generator: list                  # --generator-times GeneratorBatch
    discriminator: list              # --discriminator-times DiscriminatorBatch


class ClassBatch(NamedTuple):
    images: torch.Tensor             # x1
    partners: torch.Tensor           # x2: another image of x1's class, row by row
    others: torch.Tensor             # x3: images of any class
    labels: torch.Tensor             # y2 (= y1): the class ids of x1 and x2
    other_labels: torch.Tensor       # y3
    noise: Optional[torch.Tensor]    # (B, 7, style_dim): eps of each of the 7 z decoded per row


class ClassIteration(NamedTuple):
    indices: torch.Tensor
    batch: ClassBatch


def gather_images(data, indices, sampler, args):
    """The images at `indices` (any shape), in [0, 1], in one indexing operation; --shift applied."""
    images = to_float(data.images[indices.flatten()])
    if args.shift:
        images = random_shift(images, args.shift, sampler)
    return images.view(*indices.shape, *data.image_shape)


def draw_pair_iteration(data, stream, index, sampler, args):
    """Every batch of one pair iteration, gathered from the uint8 dataset in one indexing operation.

    Indices, partners and --shift offsets come from `sampler`; the z noise from torch's global RNG,
    in the order the steps use it.
    """
    batch, g, d = args.batch_size, args.generator_times, args.discriminator_times
    anchors = draw_indices(stream, (1 + 2 * g + 2 * d) * batch, sampler).view(-1, batch)
    autoencoder_rows, generator_rows, discriminator_rows = anchors.split([1, 2 * g, 2 * d])
    # the autoencoder's x1 and every discriminator step's x2 (the second of its rows) need a partner
    partners = draw_partners(torch.cat([autoencoder_rows, discriminator_rows[1::2]]).flatten(),
                             data.labels, index, sampler).view(-1, batch)
    indices = torch.cat([anchors, partners])
    autoencoder_images, generator_pairs, discriminator_pairs, autoencoder_partners, discriminator_partners = (
        gather_images(data, indices, sampler, args).split([1, 2 * g, 2 * d, 1, d]))

    def normal():
        return torch.randn(batch, args.style_dim, device=indices.device)
    autoencoder = AutoencoderBatch(autoencoder_images[0], autoencoder_partners[0],
                                   None if args.no_reparam else normal())
    generator = [GeneratorBatch(x1, x3, None if args.no_reparam else normal(), normal())
                 for x1, x3 in generator_pairs.view(g, 2, *generator_pairs.shape[1:])]
    discriminator = [DiscriminatorBatch(x1, x2, partner) for (x1, x2), partner in
                     zip(discriminator_pairs.view(d, 2, *discriminator_pairs.shape[1:]), discriminator_partners)]
    return PairIteration(indices, autoencoder, generator, discriminator)


def draw_class_iteration(data, stream, index, sampler, args):
    """The three groups of one class iteration, gathered in one indexing operation: x1 from the
    stream of passes, x2 the same-class partners of x1, x3 as the authors draw it (a class uniformly,
    then one of its images); z noise from torch's global RNG."""
    batch = args.batch_size
    anchors = draw_indices(stream, batch, sampler)
    indices = torch.stack([anchors, draw_partners(anchors, data.labels, index, sampler),
                           draw_by_uniform_class(batch, index, sampler)])
    return class_iteration_at(indices, data, sampler, args)


def class_iteration_at(indices, data, sampler, args):
    """The class iteration of x1, x2, x3 at the dataset's (3, B) `indices`, with its z noise."""
    x1, x2, x3 = gather_images(data, indices, sampler, args)
    labels = data.labels[indices]
    noise = None if args.no_reparam else torch.randn(indices.shape[1], 7, args.style_dim, device=indices.device)
    return ClassIteration(indices, ClassBatch(x1, x2, x3, labels[1], labels[2], noise))


def map_tensors(function, value):
    """`value` (tensors in NamedTuples and lists, or None) with `function` applied to every tensor."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return function(value)
    if isinstance(value, list):
        return [map_tensors(function, item) for item in value]
    return type(value)(*(map_tensors(function, item) for item in value))


def tensors_of(value):
    """Every tensor in `value`, in a fixed order."""
    found = []
    map_tensors(found.append, value)
    return found


def local_part(iteration, rank, world):
    """This process's equal share of the rows of every batch (the whole iteration in one process)."""
    if world == 1:
        return iteration
    def share(tensor):
        return tensor.chunk(world)[rank]
    return type(iteration)(iteration.indices, *(map_tensors(share, part) for part in iteration[1:]))


# ---------------------------------------------------------------------------------------------
# Shared by both versions.

def style_code(mu, logvar, noise, args):
    """z sampled from the posterior; z = mu with --no-reparam."""
    return mu if args.no_reparam else sample_style(mu, logvar, noise)


def kl_term(mu, logvar, images, args):
    """KL of z's posterior for these images, divided by B*C*H*W; none with --no-reparam."""
    return torch.zeros((), device=mu.device) if args.no_reparam else kl_divergence(mu, logvar, images[0].numel())


def update(optimizer, loss, apply):
    """Backpropagate `loss` and step `optimizer` (a fused Adam); where the 0-dim bool tensor `apply`
    is False, the step leaves weights, moments and step count as they were, decided on the device."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients([param for group in optimizer.param_groups for param in group["params"]])
    optimizer.found_inf = (~apply).float()  # fused Adam skips its whole step where this is 1
    optimizer.step()


def skipped(finite):
    return (~finite).float()


# ---------------------------------------------------------------------------------------------
# pair: the published objective.

def autoencoder_losses(encoder, decoder, batch, args):
    """MSE(Dec(z1, s1), x1) + MSE(Dec(z1, s1'), x1), and the KL of z1: s must be shareable within a class."""
    x1 = batch.images
    size = len(x1)
    mu, logvar, class_code = encoder(torch.cat([x1, batch.partners]))  # one call: (2B, ...)
    z1, kl = style_code(mu[:size], logvar[:size], batch.noise, args), kl_term(mu[:size], logvar[:size], x1, args)
    rebuilt = decoder(torch.cat([z1, z1]), class_code)  # [Dec(z1, s1); Dec(z1, s1')]
    reconstruction = F.mse_loss(rebuilt[:size], x1) + F.mse_loss(rebuilt[size:], x1)
    return reconstruction, kl


def generator_losses(encoder, decoder, discriminator, batch, args):
    """Dec(z1, s3) and Dec(z ~ N(0, I), s3) judged "same class as x3" (cross-entropy), and the KL of z1."""
    x1, x3 = batch.style_images, batch.class_images
    size = len(x1)
    mu, logvar, class_code = encoder(torch.cat([x1, x3]))
    z1, kl = style_code(mu[:size], logvar[:size], batch.noise, args), kl_term(mu[:size], logvar[:size], x1, args)
    s3 = class_code[size:]
    fakes = decoder(torch.cat([z1, batch.prior]), torch.cat([s3, s3]))
    logits = discriminator(torch.cat([x3, x3]), fakes)
    same = torch.full((2 * size,), SAME, device=x1.device)
    adversarial = 2 * F.cross_entropy(logits, same)  # = CE(fake_a) + CE(fake_b), each a mean over B
    return adversarial, kl


def discriminator_loss(encoder, decoder, discriminator, batch, args):
    """(x2, x2') "same" against (x2', Dec(mu1, s2')) "different": cross-entropy and accuracy.

    As published, the fake's class source is x2's partner, so real and fake pairs share an image.
    """
    x1, x2, partner = batch
    size = len(x1)
    with torch.no_grad():  # encoder and decoder only supply the fake; no backward through them
        mu, _, class_code = encoder(torch.cat([x1, partner]))
        fake = decoder(mu[:size], class_code[size:])
    logits = discriminator(torch.cat([x2, partner]), torch.cat([partner, fake]))
    target = torch.cat([torch.full((size,), SAME, device=x1.device),
                        torch.full((size,), DIFFERENT, device=x1.device)])
    loss = 2 * F.cross_entropy(logits, target)  # = CE(real) + CE(fake)
    return loss, (logits.argmax(1) == target).float().mean()


def autoencoder_step(nets, optimizer, batch, args):
    encoder, decoder, _ = nets
    reconstruction, kl = autoencoder_losses(encoder, decoder, batch, args)
    loss = reconstruction + args.kl_weight * kl
    mean_reconstruction, mean_kl, mean_loss = global_mean(reconstruction, kl, loss)
    finite = torch.isfinite(mean_loss)
    update(optimizer, loss, finite)
    return {"reconstruction": mean_reconstruction.detach(), "kl": mean_kl.detach(), "skipped_updates": skipped(finite)}


def generator_step(nets, optimizer, batch, args):
    encoder, decoder, discriminator = nets
    discriminator.requires_grad_(False)  # its weights must not move here, and need no gradients
    adversarial, kl = generator_losses(encoder, decoder, discriminator, batch, args)
    loss = adversarial + args.kl_weight * kl
    mean_adversarial, mean_loss = global_mean(adversarial, loss)
    finite = torch.isfinite(mean_loss)
    update(optimizer, loss, finite)
    discriminator.requires_grad_(True)
    return {"generator": mean_adversarial.detach(), "skipped_updates": skipped(finite)}


def discriminator_step(nets, optimizer, batch, args):
    """Steps only while the discriminator's accuracy (over all processes) is below --disc-gate, so
    the generator still gets a useful signal."""
    loss, accuracy = discriminator_loss(*nets, batch, args)
    mean_loss, mean_accuracy = global_mean(loss, accuracy)
    finite = torch.isfinite(mean_loss)
    stepped = finite & (mean_accuracy < args.disc_gate)
    update(optimizer, loss, stepped)
    return {"discriminator": mean_loss.detach(), "disc_accuracy": mean_accuracy.detach(),
            "disc_stepped": stepped.float(), "skipped_updates": skipped(finite)}


PAIR_COLUMNS = ["reconstruction", "kl", "generator", "discriminator", "disc_accuracy", "disc_stepped",
                "skipped_updates"]


def pair_iteration(nets, optimizers, iteration, args):
    """One pair iteration on the batches of draw_pair_iteration. Returns PAIR_COLUMNS as one tensor,
    and the updates skipped for a non-finite loss per optimizer (autoencoder, generator, discriminator).

    Generator and discriminator columns are means over their steps; skipped_updates counts the
    skipped updates. A discriminator step that is not skipped and not stepped found its gate closed.
    """
    # (1) autoencoder step
    autoencoder = [autoencoder_step(nets, optimizers["autoencoder"], iteration.autoencoder, args)]
    # (2) generator steps
    generator = [generator_step(nets, optimizers["generator"], batch, args) for batch in iteration.generator]
    # (3) discriminator steps
    discriminator = [discriminator_step(nets, optimizers["discriminator"], batch, args)
                     for batch in iteration.discriminator]
    logs = autoencoder + generator + discriminator
    skips = torch.stack([torch.stack([log["skipped_updates"] for log in step]).sum()
                         for step in (autoencoder, generator, discriminator)])
    means = {name: torch.stack([log[name] for log in logs if name in log]).mean() for name in PAIR_COLUMNS[:-1]}
    return torch.stack([*means.values(), skips.sum()]), skips


# ---------------------------------------------------------------------------------------------
# class: the authors' objective.

def class_generator_losses(encoder, decoder, discriminator, batch, args):
    """The authors' generator terms on one batch of three groups, and the fakes (detached) for the
    discriminator: (reconstruction, swap, adversarial, kl, fakes).

    - reconstruction: MSE of each group rebuilt from its own codes, Dec(z_k, s_k) against x_k;
    - swap: MSE of the same-class swaps [Dec(z1, s2), Dec(z2, s1)] against [x1, x2];
      both MSEs at the authors' pixel scale, [-1, 1] (authors_mse);
    - adversarial: the fakes [Dec(z3, s2) shown with y2, Dec(z2, s3) shown with y3] judged real
      (binary cross-entropy against --real-target);
    - kl: KL(z) of the three groups.
    Every decoded z is its own sample, as the authors' decoder samples each row it decodes.
    """
    x = torch.cat([batch.images, batch.partners, batch.others])
    size = len(batch.images)
    mu, logvar, class_code = encoder(x)
    (mu1, mu2, mu3), (logvar1, logvar2, logvar3), (s1, s2, s3) = (t.split(size) for t in (mu, logvar, class_code))
    # decoded rows: Dec(z1, s1), Dec(z2, s2), Dec(z3, s3) | Dec(z1, s2), Dec(z2, s1) | Dec(z3, s2), Dec(z2, s3)
    noise = None if batch.noise is None else batch.noise.transpose(0, 1).flatten(0, 1)
    z = style_code(torch.cat([mu1, mu2, mu3, mu1, mu2, mu3, mu2]),
                   torch.cat([logvar1, logvar2, logvar3, logvar1, logvar2, logvar3, logvar2]), noise, args)
    decoded = decoder(z, torch.cat([s1, s2, s3, s2, s1, s2, s3]))
    rebuilt, swapped, fakes = decoded.split([3 * size, 2 * size, 2 * size])
    reconstruction = authors_mse(rebuilt, x)
    swap = authors_mse(swapped, x[:2 * size])
    logits = discriminator(fakes, torch.cat([batch.labels, batch.other_labels]))
    adversarial = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, args.real_target))
    return reconstruction, swap, adversarial, kl_term(mu, logvar, x, args), fakes.detach()


def authors_mse(decoded, images):
    """MSE with the pixels mapped to [-1, 1], where the authors' data and tanh decoder put them: 4x
    the MSE in [0, 1], so that their default weights weigh these terms against the adversarial and
    KL terms as they did."""
    return F.mse_loss(2 * decoded - 1, 2 * images - 1)


def class_discriminator_loss(discriminator, batch, fakes, args):
    """BCE of D(x2, y2) and D(x3, y3) against --real-target, plus BCE of the fakes (shown with y2,
    y3) against 0; and the accuracy (real logit > 0, fake logit < 0). Real and fake images go
    through D in separate calls, as in the authors' code: each has its own batch-norm statistics."""
    labels = torch.cat([batch.labels, batch.other_labels])
    real = discriminator(torch.cat([batch.partners, batch.others]), labels)
    fake = discriminator(fakes, labels)
    loss = (F.binary_cross_entropy_with_logits(real, torch.full_like(real, args.real_target))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    return loss, torch.cat([real > 0, fake < 0]).float().mean()


CLASS_COLUMNS = ["reconstruction", "swap_reconstruction", "kl", "generator", "discriminator", "disc_accuracy",
                 "skipped_updates"]


def class_iteration(nets, optimizers, iteration, args):
    """One class iteration on the batch of draw_class_iteration. Returns CLASS_COLUMNS as one tensor,
    and the updates skipped for a non-finite loss per optimizer (generator, discriminator)."""
    encoder, decoder, discriminator = nets
    batch = iteration.batch
    # (1) generator step: every term of the encoder and decoder at once
    discriminator.requires_grad_(False)
    reconstruction, swap, adversarial, kl, fakes = class_generator_losses(encoder, decoder, discriminator, batch,
                                                                          args)
    loss = (args.reconstruction_weight * reconstruction + args.swap_weight * swap
            + args.adversarial_weight * adversarial + args.kl_weight * CLASS_KL_SCALE * kl)
    reconstruction, swap, adversarial, kl, generator_loss = global_mean(reconstruction, swap, adversarial, kl, loss)
    generator_finite = torch.isfinite(generator_loss)
    update(optimizers["generator"], loss, generator_finite)
    discriminator.requires_grad_(True)
    # (2) discriminator step, on the fakes made before the generator's update (as the authors')
    disc_loss, accuracy = class_discriminator_loss(discriminator, batch, fakes, args)
    mean_disc_loss, accuracy = global_mean(disc_loss, accuracy)
    disc_finite = torch.isfinite(mean_disc_loss)
    update(optimizers["discriminator"], disc_loss, disc_finite)
    skips = torch.stack([skipped(generator_finite), skipped(disc_finite)])
    row = torch.stack([reconstruction, swap, kl, adversarial, mean_disc_loss, accuracy, skips.sum()])
    return row.detach(), skips


# ---------------------------------------------------------------------------------------------
# The two versions, as train.py uses them.

class Objective(NamedTuple):
    draw: callable          # (data, stream, index, sampler, args) -> one iteration's batches
    iterate: callable       # (nets, optimizers, batches, args) -> (log row of `columns`, skips per optimizer)
    columns: list           # log.csv's loss columns
    optimizers: tuple       # names of its Adam optimizers; the first ones step the encoder and decoder


OBJECTIVES = {"pair": Objective(draw_pair_iteration, pair_iteration, PAIR_COLUMNS,
                                ("autoencoder", "generator", "discriminator")),
              "class": Objective(draw_class_iteration, class_iteration, CLASS_COLUMNS, ("generator", "discriminator"))}
