"""hubconf.py: the shipped models load through torch.hub offline and are the shipped checkpoints."""
import os

import pytest
import torch

from conftest import ROOT
from networks import load_networks
from utils import load_checkpoint, swap_grid

SHIPPED = {"mnist_pair": "mnist_z16_s16.pt", "mnist_z64_s64_pair": "mnist_z64_s64.pt", "mnist_class": "mnist_class_z16_s16.pt",
           "sprites_pair": "sprites_z512_s64.pt", "linemod_pair": "linemod_z64_s256.pt"}


@pytest.mark.parametrize("entry", SHIPPED)
def test_hub_loaded_networks_draw_the_shipped_checkpoints_swap_grid(entry):
    path = os.path.join(ROOT, "checkpoints", SHIPPED[entry])
    if not os.path.isfile(path):
        pytest.skip(f"{SHIPPED[entry]} is not shipped yet")
    encoder, decoder = torch.hub.load(ROOT, entry, source="local")
    assert not encoder.training and not decoder.training
    state = load_checkpoint(path)
    images = torch.rand(6, *state["config"]["image_shape"], generator=torch.Generator().manual_seed(0))
    shipped = load_networks(state, "cpu")
    assert torch.equal(swap_grid(encoder, decoder, images, images), swap_grid(*shipped, images, images))


def test_hub_lists_the_shipped_models_and_documents_them():
    import hubconf
    entries = [name for name in dir(hubconf) if callable(getattr(hubconf, name)) and not name.startswith("_")]
    assert sorted(entries) == sorted(SHIPPED)  # what torch.hub.list shows
    for entry in SHIPPED:
        assert "returns (encoder, decoder)" in getattr(hubconf, entry).__doc__  # what torch.hub.help shows


def test_the_readme_example_swaps_with_the_shipped_class_model():
    if not os.path.isfile(os.path.join(ROOT, "checkpoints", SHIPPED["mnist_class"])):
        pytest.skip("mnist_class_z16_s16.pt is not shipped yet")
    with open(os.path.join(ROOT, "README.md")) as handle:
        readme = handle.read()
    section = readme[readme.index("## Use the model from your code"):]
    code = section[section.index("```python") + len("```python"):section.index("```\n", section.index("```python") + 9)]
    images = torch.rand(2, 3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    scope = {"style_images": images[0], "class_images": images[1]}
    exec(code.replace("path/to/this/checkout", ROOT), scope)
    encoder, decoder = scope["encoder"], scope["decoder"]
    assert torch.equal(scope["swapped"], decoder(encoder(images[0])[0], encoder(images[1])[2]))
