"""convert_published.py: the published MNIST checkpoint's layout, written here from random weights,
loads into our networks and computes what the published networks compute."""
import os
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import convert_published
import evaluate
import train
from conftest import REAL_DATA
from data_loader import load_dataset, to_float
from utils import CLIError, load_checkpoint


def published_networks():
    """The published MNIST networks' layers under their own names (convs, instance norms with
    running statistics, linears), random weights."""
    torch.manual_seed(0)

    def convs(channels, activation):
        layers = OrderedDict()
        for level, (inp, out) in enumerate(zip(channels, channels[1:]), start=1):
            layers[f"convolution_{level}"] = nn.Conv2d(inp, out, 5, stride=2, padding=1)
            layers[f"convolution_{level}_in"] = nn.InstanceNorm2d(out, track_running_stats=True)
            layers[f"activation_{level}"] = activation()
        return nn.Sequential(layers)
    encoder = nn.Module()
    encoder.conv_model = convs([1, 16, 32, 64], nn.ReLU)
    encoder.style_mu, encoder.style_logvar, encoder.class_output = (nn.Linear(256, 16) for _ in range(3))
    decoder = nn.Module()
    decoder.style_input, decoder.class_input = nn.Linear(16, 256), nn.Linear(16, 256)
    decoder.deconv_model = nn.Sequential(OrderedDict([  # paddings 0, 0, 1: 2 -> 6 -> 14 -> 28
        ("deconvolution_1", nn.ConvTranspose2d(128, 32, 4, stride=2, padding=0)),
        ("deconvolution_1_in", nn.InstanceNorm2d(32, track_running_stats=True)), ("relu_1", nn.LeakyReLU(0.2)),
        ("deconvolution_2", nn.ConvTranspose2d(32, 16, 4, stride=2, padding=0)),
        ("deconvolution_2_in", nn.InstanceNorm2d(16, track_running_stats=True)), ("relu_2", nn.LeakyReLU(0.2)),
        ("deconvolution_3", nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1)), ("sigmoid", nn.Sigmoid())]))
    discriminator = nn.Module()
    discriminator.conv_model = convs([2, 32, 64, 128], lambda: nn.LeakyReLU(0.2))
    discriminator.fully_connected_model = nn.Sequential(OrderedDict([("output", nn.Linear(512, 2))]))
    return encoder, decoder, discriminator


def published_decode(decoder, style, class_code):
    """The published decoder's forward, in training mode (per-image statistics, as ours)."""
    h = torch.cat([F.leaky_relu(decoder.style_input(style), 0.2),
                   F.leaky_relu(decoder.class_input(class_code), 0.2)], 1)
    return decoder.deconv_model.train()(h.view(-1, 128, 2, 2))


@pytest.fixture
def published_dir(tmp_path):
    for name, net in zip(["encoder", "decoder", "discriminator"], published_networks()):
        torch.save(net.state_dict(), tmp_path / name)
    return tmp_path


def test_converted_networks_compute_what_the_published_ones_do(published_dir, tmp_path):
    destination = tmp_path / "out" / "published.pt"
    convert_published.main([str(published_dir), str(destination)])
    state = load_checkpoint(str(destination))
    assert state["config"]["decoder_geometry"] == "published"
    encoder, decoder = evaluate.load_networks(state, "cpu")
    published_encoder, published_decoder, published_discriminator = published_networks()
    images = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        features = published_encoder.conv_model.train()(images).flatten(1)
        for ours, theirs in zip(encoder(images), (published_encoder.style_mu(features),
                                                  published_encoder.style_logvar(features),
                                                  published_encoder.class_output(features))):
            torch.testing.assert_close(ours, theirs)
        style, class_code = torch.randn(3, 16), torch.randn(3, 16)
        torch.testing.assert_close(decoder(style, class_code), published_decode(published_decoder, style, class_code))
    assert not os.path.exists(tmp_path / "out" / "published.pt.tmp")


def test_a_folder_without_the_published_files_is_a_one_line_error(tmp_path):
    with pytest.raises(CLIError, match="cannot read .*encoder.*pass the folder holding the published"):
        convert_published.main([str(tmp_path), str(tmp_path / "x.pt")])


PUBLISHED = os.environ.get("DFV_PUBLISHED")  # the published checkpoints/ folder; CI sets it when it has one


@pytest.mark.slow
@pytest.mark.skipif(not (PUBLISHED and REAL_DATA), reason="set DFV_PUBLISHED and DFV_DATA")
def test_the_real_published_checkpoint_converts_and_reconstructs_digits(tmp_path):
    destination = tmp_path / "published.pt"
    convert_published.main([PUBLISHED, str(destination)])
    encoder, decoder = evaluate.load_networks(load_checkpoint(str(destination)), "cpu")
    args = train.build_parser().parse_args(["--data-root", REAL_DATA])
    digits = to_float(load_dataset(args, "test").images[:500])
    with torch.no_grad():
        mu, _, class_code = encoder(digits)
        error = F.mse_loss(decoder(mu, class_code), digits).item()
    assert error < 0.03  # 0.015 measured; a mis-mapped layer gives blobs far above
