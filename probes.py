"""What evaluate.py measures on a trained model's codes and decoded images: the linear probes on
z sampled, z mean and s, and swap accuracy (the judge CNN that labels Dec(z_i, s_j), and the style
that a swap keeps). evaluate.py loads the model and the data, calls these, draws and reports.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from data_loader import draw_indices, new_stream, to_float
from networks import Classifier, ProbeGroup
from utils import CLIError, sample_style, seed_everything

CODES = ("z_sampled", "z_mean", "s")  # the probes' inputs
ENCODE_BATCH = 500
JUDGE_LR, JUDGE_BATCH = 1e-3, 128  # the swap-accuracy CNN

# ---------------------------------------------------------------------------------------------
# Codes and classifiers. Classifiers train on batches gathered by index from tensors on the
# device (no DataLoader): a probe step is then a few small kernels.

@torch.no_grad()
def encode(encoder, images, desc):
    """uint8 images (N, C, H, W) -> {"mu", "logvar", "s"}, each (N, dim), with the encoder in eval mode."""
    encoder.eval()
    starts = range(0, len(images), ENCODE_BATCH)
    parts = [encoder(to_float(images[start:start + ENCODE_BATCH]))
             for start in tqdm(starts, desc=desc, leave=False, disable=None)]
    mu, logvar, s = (torch.cat(part) for part in zip(*parts))
    return {"mu": mu, "logvar": logvar, "s": s}


def code_of(codes, name, indices, noise=None):
    """A probe's input for these images: z sampled afresh (mu + sigma * eps, eps from the `noise`
    generator, else torch's global one), z mean (mu), or s.

    codes["logvar"] is None for a --no-reparam model, whose z is mu: then z sampled = z mean.
    With --z-sample fixed, codes["z_fixed"] holds the one sample per image.
    """
    if name == "s":
        return codes["s"][indices]
    if name == "z_sampled" and "z_fixed" in codes:
        return codes["z_fixed"][indices]
    if name == "z_sampled" and codes["logvar"] is not None:
        mu = codes["mu"][indices]
        return sample_style(mu, codes["logvar"][indices], torch.randn(mu.shape, generator=noise, device=mu.device))
    return codes["mu"][indices]


def fit(model, inputs, labels, iterations, lr, batch_size, seed, desc, loss=F.cross_entropy):
    """Train a classifier with Adam on loss(model(inputs(indices)), labels[indices]).

    Batches come from endless reshuffled passes over the items, as in training; nothing in a step
    waits for the device.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    rng = torch.Generator(labels.device).manual_seed(seed)
    stream = new_stream(len(labels), rng)
    model.train()
    for _ in tqdm(range(iterations), desc=desc, leave=False, disable=None, mininterval=1):
        batch = draw_indices(stream, batch_size, rng)
        step_loss = loss(model(inputs(batch)), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        step_loss.backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def accuracy(model, inputs, labels, batch_size=2048):
    """Share of the items the model labels correctly, in eval mode; for a ProbeGroup, one share per probe."""
    model.eval()
    correct = 0
    for start in range(0, len(labels), batch_size):
        indices = torch.arange(start, min(start + batch_size, len(labels)), device=labels.device)
        correct = correct + (model(inputs(indices)).argmax(-1) == labels[indices]).sum(-1)
    return (correct.double() / len(labels)).tolist()


def chance(train_labels, test_labels):
    """Test accuracy of always answering the most frequent training class."""
    return (test_labels == torch.bincount(train_labels).argmax()).sum().item() / len(test_labels)


def fit_probes(codes, labels, num_classes, args, desc):
    """The published probe on each of the CODES, trained side by side as one ProbeGroup. Returns it
    and probe_inputs(codes), its input for the images at some indices of those codes.

    Each probe gets the numbers it would get trained alone, up to float rounding: it is
    initialized after reseeding, as if alone; every probe sees the batches of the seeded order; and
    z sampled draws its noise from the stream it would draw from alone, the global generator's
    state right after its initialization.
    """
    device = labels.device
    alone, noise = [], None
    for name in CODES:
        seed_everything(args.seed)  # init and z noise: each probe the same whatever ran before it
        alone.append(Classifier(codes["s" if name == "s" else "mu"].shape[1], num_classes))
        if name == "z_sampled":
            noise = torch.Generator(device).set_state(torch.cuda.get_rng_state(device) if device.type == "cuda"
                                                      else torch.get_rng_state())
    group = ProbeGroup(alone).to(device)
    width = group.layers[0].weight.shape[1]

    def probe_inputs(source):  # (probes, batch, width): each probe's code, zero-padded to the widest
        return lambda indices: torch.stack([F.pad(code_of(source, name, indices, noise),
                                                  (0, width - source["s" if name == "s" else "mu"].shape[1]))
                                            for name in CODES])

    def summed_cross_entropy(logits, targets):  # the sum of the probes' mean losses: probe k's gradient is its own
        return F.cross_entropy(logits.flatten(0, 1), targets.repeat(len(CODES))) * len(CODES)
    fit(group, probe_inputs(codes), labels, args.probe_iterations, args.probe_lr, args.probe_batch_size, args.seed,
        desc, loss=summed_cross_entropy)
    return group, probe_inputs


def train_probes(train_codes, train_labels, eval_codes, eval_labels, args, desc):
    """Train the probes on the training split's codes -> {code: {"train_acc", "<eval split>_acc"}}."""
    num_classes = int(max(train_labels.max(), eval_labels.max())) + 1
    group, probe_inputs = fit_probes(train_codes, train_labels, num_classes, args, desc)
    scores = zip(accuracy(group, probe_inputs(train_codes), train_labels),
                 accuracy(group, probe_inputs(eval_codes), eval_labels))
    return {name: {"train_acc": train_acc, f"{args.eval_split}_acc": eval_acc}
            for name, (train_acc, eval_acc) in zip(CODES, scores)}


def run_probes(train_codes, eval_codes, probe_train, probe_eval, args):
    """The class from z sampled, z mean and s; then every style label from the same three codes."""
    results = train_probes(train_codes, probe_train.labels, eval_codes, probe_eval.labels, args, "probes -> class")
    results["style"] = {}
    for label in probe_train.style_labels:
        train_labels, eval_labels = probe_train.style_labels[label], probe_eval.style_labels[label]
        results["style"][label] = {
            "num_classes": int(max(train_labels.max(), eval_labels.max())) + 1,
            "chance": chance(train_labels, eval_labels),
            **train_probes(train_codes, train_labels, eval_codes, eval_labels, args, f"probes -> {label}")}
    return results


# ---------------------------------------------------------------------------------------------
# Swap accuracy: does Dec(z_i, s_j) show j's class?

def image_classifier(image_shape, num_classes):
    """The judge: 3x3 stride-2 convs (16, 32, 64 channels) halve the image down to at most
    8 pixels (28 -> 14 -> 7, 64 -> 32 -> 16 -> 8), then one linear layer."""
    channels, height, width = image_shape
    layers, width_out = [], 16
    while max(height, width) > 8:
        layers += [nn.Conv2d(channels, width_out, 3, stride=2, padding=1), nn.ReLU()]
        channels, width_out = width_out, 2 * width_out
        height, width = (height + 1) // 2, (width + 1) // 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * height * width, num_classes))


def train_judge(probe_train, probe_eval, args):
    """The CNN that labels swapped images, trained on the probe-train images; returns it and its
    accuracy on the eval split."""
    seed_everything(args.seed)
    judge = image_classifier(probe_train.image_shape, probe_train.num_classes).to(probe_train.images.device)
    fit(judge, lambda i: to_float(probe_train.images[i]), probe_train.labels, args.judge_iterations, JUDGE_LR,
        JUDGE_BATCH, args.seed, "swap judge")
    return judge, accuracy(judge, lambda i: to_float(probe_eval.images[i]), probe_eval.labels, batch_size=500)


def different_class_pairs(labels, count, seed):
    """`count` random pairs (i, j) with labels[i] != labels[j], drawn uniformly among such pairs."""
    if len(torch.unique(labels)) < 2:
        raise CLIError("swap accuracy needs test images of at least two classes (or pass --skip-swap)")
    rng = torch.Generator().manual_seed(seed)
    cpu_labels = labels.cpu()
    first = torch.randint(len(labels), (count,), generator=rng)
    second = torch.randint(len(labels), (count,), generator=rng)
    same = cpu_labels[first] == cpu_labels[second]
    while same.any():  # redraw the partners of same-class pairs only
        second[same] = torch.randint(len(labels), (int(same.sum()),), generator=rng)
        same = cpu_labels[first] == cpu_labels[second]
    return first.to(labels.device), second.to(labels.device)


@torch.no_grad()
def swap_accuracy(decoder, judge, codes, images, labels, count, seed, batch_size=500):
    """Over random pairs (i, j) of different classes, the shares of Dec(mu_i, s_j) that the judge
    labels as j's class and as i's, and how much of x_i's style they keep (style_kept). z is the
    posterior mean: the numbers should not depend on a noise draw."""
    decoder.eval(), judge.eval()
    first, second = different_class_pairs(labels, count, seed)
    predicted, swapped, rebuilt = [], [], []
    for i, j in zip(first.split(batch_size), second.split(batch_size)):
        swap = decoder(codes["mu"][i], codes["s"][j])
        predicted.append(judge(swap).argmax(1))
        swapped.append(image_moments(swap))
        rebuilt.append(image_moments(decoder(codes["mu"][i], codes["s"][i])))
    predicted = torch.cat(predicted)
    sources = image_moments(to_float(images[first]))
    return {"labelled_s_class": (predicted == labels[second]).sum().item() / count,
            "labelled_z_class": (predicted == labels[first]).sum().item() / count,
            "style_kept": {"swap": style_kept(sources, labels[first], concat(swapped), labels[second]),
                           "reconstruction": style_kept(sources, labels[first], concat(rebuilt), labels[first])}}


def image_moments(images):
    """The handwriting style of each image (N, C, H, W), from the intensity moments of its channel
    mean: ink (mean intensity), slant (horizontal shift of the ink per row down: mu11 / mu02) and
    width (horizontal spread of the ink: sqrt(mu20))."""
    gray = images.float().mean(1)
    _, height, width = gray.shape
    rows = torch.arange(height, dtype=gray.dtype, device=gray.device).view(1, height, 1)
    columns = torch.arange(width, dtype=gray.dtype, device=gray.device).view(1, 1, width)
    mass = gray.sum((1, 2)).clamp_min(1e-6)

    def mean(values):
        return (gray * values).sum((1, 2)) / mass
    dy = rows - mean(rows).view(-1, 1, 1)
    dx = columns - mean(columns).view(-1, 1, 1)
    return {"ink": mass / (height * width), "slant": mean(dx * dy) / mean(dy ** 2).clamp_min(1e-6),
            "width": mean(dx ** 2).sqrt()}


def concat(moments):
    return {name: torch.cat([batch[name] for batch in moments]) for name in moments[0]}


def within_class(values, labels):
    """`values` standardized within each class: what is left is the style, not the class's typical value."""
    scores = torch.zeros_like(values)
    for label in labels.unique():
        members = labels == label
        spread = values[members].std(correction=0)
        if spread > 1e-6:  # else the class's images do not vary (past float rounding): scores 0
            scores[members] = (values[members] - values[members].mean()) / spread
    return scores


def style_kept(sources, source_labels, images, image_labels):
    """Per measure of image_moments, the correlation between the z source's style and the decoded
    image's, each standardized within its own class: 1 = the style carried over, 0 = none of it
    (also when a class's decoded images do not vary at all)."""
    # both score vectors have mean 0, so their cosine is their correlation
    return {name: F.cosine_similarity(within_class(sources[name], source_labels),
                                      within_class(images[name], image_labels), dim=0).item()
            for name in sources}
