"""The networks of Mathieu et al. (NIPS 2016), parameterized by image shape.

Encoder, decoder, pair discriminator and probe are the published PyTorch layers: 1x28x28 (MNIST)
uses three strided conv levels, exactly as published; 3x64x64 (Sprites, LINE-MOD, folders) adds a
fourth level. Nothing else differs. ClassDiscriminator is the authors' own (their Torch7 code).

Instance norm uses per-image statistics in train and eval mode (PyTorch's default).
The published code sets track_running_stats=True, so its eval mode normalizes with
running averages instead; on the same weights that blurred its swap grids and cost
about a point of s accuracy, so we do not copy it.

Every network returns float32, also when it runs under bfloat16 autocast (train.py --precision
bf16): the KL, the losses and the log are then summed in float32 as without it.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import CLIError, first_line


def conv_levels(image_shape):
    """Number of stride-2 levels: 3 for images up to 32 pixels, 4 above (64x64)."""
    return 3 if max(image_shape[1:]) <= 32 else 4


def conv_sizes(size, levels):
    """Spatial sizes through 5x5 stride-2 padding-1 convs: 28 -> [28, 13, 6, 2]."""
    sizes = [size]
    for _ in range(levels):
        sizes.append((sizes[-1] + 2 - 5) // 2 + 1)
    return sizes


def init_weights(module):
    # The published init: N(0, 0.05) weights and zero bias for Conv2d and Linear.
    # Its check does not match ConvTranspose2d, which keeps PyTorch's default init;
    # we keep that too, since the published results were obtained with it.
    if type(module) in (nn.Conv2d, nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.05)
        nn.init.zeros_(module.bias)


def conv_stack(in_channels, channels, activation):
    layers = []
    for out_channels in channels:
        layers += [nn.Conv2d(in_channels, out_channels, 5, stride=2, padding=1),
                   nn.InstanceNorm2d(out_channels), activation()]
        in_channels = out_channels
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """image -> (style_mu, style_logvar, class_code): z's posterior and s."""

    def __init__(self, image_shape, style_dim, class_dim):
        super().__init__()
        channels, height, width = image_shape
        levels = conv_levels(image_shape)
        widths = [16 * 2 ** i for i in range(levels)]  # 16, 32, 64 (, 128)
        self.features = conv_stack(channels, widths, nn.ReLU)
        # 1x28x28 -> 64x2x2 = 256 features, as published
        feature_dim = widths[-1] * conv_sizes(height, levels)[-1] * conv_sizes(width, levels)[-1]
        self.style_mu = nn.Linear(feature_dim, style_dim)
        self.style_logvar = nn.Linear(feature_dim, style_dim)
        self.class_code = nn.Linear(feature_dim, class_dim)
        self.apply(init_weights)

    def forward(self, images):
        h = self.features(images).flatten(1)
        return self.style_mu(h).float(), self.style_logvar(h).float(), self.class_code(h).float()


class Decoder(nn.Module):
    """(z, s) -> image in [0, 1]; layers, kernels and channels are the published ones.

    geometry "retrace": the transposed convs retrace the encoder's sizes, 2 -> 6 -> 13 -> 28 for
    MNIST. "published": they grow unpadded and the last one crops, 2 -> 6 -> 14 -> 28, as the
    published decoder does; only for loading its weights (convert_published.py).
    """

    def __init__(self, image_shape, style_dim, class_dim, geometry="retrace"):
        super().__init__()
        channels, height, width = image_shape
        levels = conv_levels(image_shape)
        encoder_widths = [16 * 2 ** i for i in range(levels)]
        heights, widths = conv_sizes(height, levels), conv_sizes(width, levels)
        if geometry == "published":  # every level but the last at its unpadded size 2 * source + 2
            heights, widths = (unpadded_sizes(sizes) for sizes in (heights, widths))
        # Start at the encoder's last grid with twice its channels: 128x2x2 for MNIST,
        # half of it filled from z and half from s (256 each), as published.
        self.start_shape = (2 * encoder_widths[-1], heights[-1], widths[-1])
        half = self.start_shape[0] * heights[-1] * widths[-1] // 2
        self.style_input = nn.Linear(style_dim, half)
        self.class_input = nn.Linear(class_dim, half)
        layers = []
        in_channels = self.start_shape[0]
        out_widths = encoder_widths[-2::-1] + [channels]  # 32, 16, C for MNIST
        for level, out_channels in enumerate(out_widths):
            source = (heights[levels - level], widths[levels - level])
            target = (heights[levels - level - 1], widths[levels - level - 1])
            padding, output_padding = zip(*(transposed_padding(s, t) for s, t in zip(source, target)))
            layers.append(nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2,
                                             padding=padding, output_padding=output_padding))
            if level < levels - 1:  # the last layer feeds the sigmoid directly
                layers += [nn.InstanceNorm2d(out_channels), nn.LeakyReLU(0.2)]
            in_channels = out_channels
        layers.append(nn.Sigmoid())
        self.deconv = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, style, class_code):
        h = torch.cat([F.leaky_relu(self.style_input(style), 0.2),
                       F.leaky_relu(self.class_input(class_code), 0.2)], dim=1)
        return self.deconv(h.view(-1, *self.start_shape)).float()


def unpadded_sizes(sizes):
    """Encoder sizes [28, 13, 6, 2] -> the decoder's targets when it grows unpadded: [28, 14, 6, 2]."""
    grown = list(sizes)
    for level in range(len(sizes) - 2, 0, -1):
        grown[level] = 2 * grown[level + 1] + 2
    return grown


def transposed_padding(source, target):
    """Padding and output padding of a 4x4 stride-2 transposed conv from source to target size.

    The unpadded output is 2 * source + 2; padding crops it, output padding adds one row.
    """
    excess = 2 * source + 2 - target
    padding = (excess + 1) // 2
    return padding, 2 * padding - excess


class Discriminator(nn.Module):
    """A pair of images, stacked on the channel axis -> logits (different, same)."""

    def __init__(self, image_shape):
        super().__init__()
        channels, height, width = image_shape
        levels = conv_levels(image_shape)
        widths = [32 * 2 ** i for i in range(levels)]  # 32, 64, 128 (, 256)
        self.features = conv_stack(2 * channels, widths, lambda: nn.LeakyReLU(0.2))
        feature_dim = widths[-1] * conv_sizes(height, levels)[-1] * conv_sizes(width, levels)[-1]
        self.output = nn.Linear(feature_dim, 2)  # index 1 = "same class", as published
        self.apply(init_weights)

    def forward(self, first, second):
        return self.output(self.features(torch.cat([first, second], dim=1)).flatten(1)).float()


class ClassDiscriminator(nn.Module):
    """An image and its class id -> one real/fake logit: the authors' discriminator (model_big.lua of
    their Torch7 code, 16 base features).

    A per-class table, reshaped to a feature map of 1/8 the image size and upsampled, is added to
    the convolution features at three depths (at 1/2, 1/4 and 1/8 of the image size); batch norm,
    LeakyReLU 0.2, dropout 0.5 before the last linear layer. Images are padded to a multiple of 8
    pixels (MNIST: 28 -> 32, as theirs), so for MNIST the tables hold 256, 512 and 1024 numbers per
    class, added onto 16x16, 8x8 and 4x4 maps. As in Torch7, the padding is mid-grey (their 0 in
    [-1, 1]) and the batch-norm scales start uniform in [0, 1].
    """

    def __init__(self, image_shape, num_classes, features=16):
        super().__init__()
        channels, height, width = image_shape
        self.padding = [pad for size in (width, height) for pad in split_padding(-size % 8)]
        self.padding_value = 0.5
        self.grid = ((height + 7) // 8, (width + 7) // 8)
        cells = self.grid[0] * self.grid[1]
        widths = [features, 2 * features, 4 * features]
        self.tables = nn.ModuleList(nn.Embedding(num_classes, width * cells) for width in widths)

        def block(in_channels, out_channels, kernel, stride):  # conv (padded as theirs), batch norm, LeakyReLU
            return [authors_conv(in_channels, out_channels, kernel, stride), *norm_and_activation(out_channels)]
        self.to_half = nn.Sequential(authors_conv(channels, features, 3, 1), nn.LeakyReLU(0.2),
                                     authors_conv(features, features, 2, 2))
        self.to_quarter = nn.Sequential(*norm_and_activation(features), *block(features, 2 * features, 2, 2),
                                        *block(2 * features, 2 * features, 3, 1))
        self.to_eighth = nn.Sequential(*norm_and_activation(2 * features), *block(2 * features, 4 * features, 2, 2),
                                       authors_conv(4 * features, 4 * features, 3, 1))
        self.output = nn.Sequential(*norm_and_activation(4 * features), *block(4 * features, 4 * features, 3, 1),
                                    nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * features * cells, 1))
        for norm in self.modules():
            if isinstance(norm, nn.BatchNorm2d):
                nn.init.uniform_(norm.weight, 0, 1)

    def class_map(self, level, labels):
        """The class's table at `level` (0, 1, 2) as a feature map, upsampled to 1/2, 1/4, 1/8 of the image."""
        table = self.tables[level](labels).view(len(labels), -1, *self.grid)
        return F.interpolate(table, scale_factor=4 // 2 ** level, mode="nearest") if level < 2 else table

    def forward(self, images, labels):
        h = self.to_half(F.pad(images, self.padding, value=self.padding_value)) + self.class_map(0, labels)
        h = self.to_quarter(h) + self.class_map(1, labels)
        h = self.to_eighth(h) + self.class_map(2, labels)
        return self.output(h).squeeze(1).float()


def split_padding(total):
    """(before, after) halves of `total` padding pixels, the odd one after."""
    return total // 2, total - total // 2


def authors_conv(in_channels, out_channels, kernel, stride):
    """Their conv(): padding ceil((kernel - stride) / 2), so a stride-s conv divides the size by s."""
    return nn.Conv2d(in_channels, out_channels, kernel, stride, padding=(kernel - stride + 1) // 2)


def norm_and_activation(channels):
    return [nn.BatchNorm2d(channels), nn.LeakyReLU(0.2)]


class Classifier(nn.Module):
    """The published probe: in -> 256 -> BN -> LeakyReLU -> 256 -> BN -> LeakyReLU -> classes."""

    def __init__(self, in_dim, num_classes):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_dim, 256), nn.BatchNorm1d(256), nn.LeakyReLU(0.2),
            nn.Linear(256, 256), nn.BatchNorm1d(256), nn.LeakyReLU(0.2),
            nn.Linear(256, num_classes))

    def forward(self, codes):
        return self.layers(codes)


class ProbeGroup(nn.Module):
    """Several Classifier probes as one batched model: inputs (P, B, in) -> logits (P, B, classes).

    Each layer holds the probes' weights side by side: a Linear as one batched matrix product over
    the probes (narrower inputs padded with zero weights, whose gradients stay 0), a BatchNorm1d as
    one over the probes' channels laid end to end. Probe k computes what it would alone, up to
    float rounding, so the probes train together in one step instead of one step each.
    """

    def __init__(self, probes):
        super().__init__()
        self.layers = nn.ModuleList(grouped_layer(list(layers)) for layers in zip(*(p.layers for p in probes)))

    def forward(self, codes):
        h = codes
        for layer in self.layers:
            h = layer(h)
        return h


class GroupedLinear(nn.Module):
    def __init__(self, linears):
        super().__init__()
        width = max(linear.in_features for linear in linears)
        self.weight = nn.Parameter(torch.stack([F.pad(linear.weight.detach().t(), (0, 0, 0, width - linear.in_features))
                                                for linear in linears]))  # (P, in, out)
        self.bias = nn.Parameter(torch.stack([linear.bias.detach() for linear in linears]).unsqueeze(1))  # (P, 1, out)

    def forward(self, h):
        return torch.baddbmm(self.bias, h, self.weight)


class GroupedBatchNorm(nn.BatchNorm1d):
    def __init__(self, norms):
        super().__init__(sum(norm.num_features for norm in norms), norms[0].eps, norms[0].momentum)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(self, name).data.copy_(torch.cat([getattr(norm, name).detach() for norm in norms]))

    def forward(self, h):  # (P, B, C): the batch statistics of each probe's channels over its B rows
        probes, batch, channels = h.shape
        flat = h.transpose(0, 1).reshape(batch, probes * channels)
        return super().forward(flat).view(batch, probes, channels).transpose(0, 1)


def grouped_layer(layers):
    """The probes' k-th layers as one layer of a ProbeGroup (activations have no weights to group)."""
    if isinstance(layers[0], nn.Linear):
        return GroupedLinear(layers)
    if isinstance(layers[0], nn.BatchNorm1d):
        return GroupedBatchNorm(layers)
    return layers[0]


DISCRIMINATORS = ("pair", "class")


def build_models(image_shape, style_dim, class_dim, decoder_geometry="retrace", discriminator="pair",
                 num_classes=None):
    """The encoder, decoder and discriminator of one model: the pair discriminator (published), or
    the class-conditional one (the authors'), which needs the number of classes."""
    encoder = Encoder(image_shape, style_dim, class_dim)
    decoder = Decoder(image_shape, style_dim, class_dim, decoder_geometry)
    judge = Discriminator(image_shape) if discriminator == "pair" else ClassDiscriminator(image_shape, num_classes)
    return encoder, decoder, judge


def load_networks(state, device):
    """Encoder and decoder of a checkpoint (full or networks only), in eval mode on `device`."""
    config = state["config"]
    shape = tuple(config["image_shape"])
    encoder = Encoder(shape, config["style_dim"], config["class_dim"])
    decoder = Decoder(shape, config["style_dim"], config["class_dim"], config.get("decoder_geometry", "retrace"))
    try:
        encoder.load_state_dict(state["encoder"])
        decoder.load_state_dict(state["decoder"])
    except RuntimeError as error:
        raise CLIError(f"the checkpoint's networks do not match its config (image shape {shape}, "
                       f"style dim {config['style_dim']}, class dim {config['class_dim']}): "
                       f"{first_line(error)}") from error
    return encoder.to(device).eval(), decoder.to(device).eval()
