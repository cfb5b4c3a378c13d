"""Sprites, LINE-MOD and folder loaders on fixtures written here in the real formats, the
decoded-image cache, the one-line errors, and the real data in ../shared/data when DFV_DATA is set."""
import json
import os

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

import train
from conftest import REAL_DATA, run_script
from data_loader import load_dataset, split_per_class
from utils import CLIError

SPRITE_FRAMES = (2, 1, 3, 1, 2)  # frames per action (the real data has 7, 8, 9, 6, 13)
SPRITE_ATTRIBUTES = {1: [0, 1, 2, 3, 4, 0, 1], 2: [1, 0, 3, 0, 1, 1, 0], 3: [0, 0, 1, 2, 0, 1, 1]}


def data_args(dataset, root, cache, *flags):
    """train.py's own flags, so the loaders see exactly what a run passes them."""
    return train.build_parser().parse_args(["--dataset", dataset, "--data-root", str(root),
                                            "--cache-dir", str(cache), *map(str, flags)])


# ---------------------------------------------------------------------------------------------
# Sprites fixture: MATLAB v7.3 character files (HDF5 with object references) and a v5 splits file.

def sprite_frame(character, clip, frame):
    """A 60x60x3 (row, column, channel) frame as a viewer sees it: an asymmetric pattern that
    shows transposes, flips and swapped channels, and a marker pixel holding its labels."""
    image = np.zeros((60, 60, 3))
    image[0:10, 0:30, 0] = 1.0  # red bar, top left, wider than tall
    image[50:60, 0:10, 1] = 1.0  # green square, bottom left
    image[0:10, 50:60, 2] = 1.0  # blue square, top right
    image[30, 30] = np.array([character, clip, frame]) / 255
    return image


def write_sprites_file(path, character):
    """sprites_<character-1>.mat as MATLAB -v7.3 writes it: HDF5 after a 512-byte header, cell
    arrays as (21, 1) datasets of object references into /#refs#, 7 labels."""
    with h5py.File(path, "w", userblock_size=512) as mat:
        refs = mat.create_group("#refs#")
        cells = {"sprites": [], "masks": []}
        for clip in range(21):  # 5 actions x 4 viewpoints, then an extra animation loaders must skip
            count = SPRITE_FRAMES[clip // 4] if clip < 20 else 3
            # MATLAB's (10800, count) matrix of column-major frames: its bytes are this C-order (count, 10800) array
            frames = np.stack([sprite_frame(character, clip, f).reshape(-1, order="F") for f in range(count)])
            cells["sprites"].append(refs.create_dataset(f"s{clip}", data=frames, compression="gzip").ref)
            cells["masks"].append(refs.create_dataset(f"m{clip}", data=frames[:, :3600] > 0).ref)
        for name, references in cells.items():
            cell = mat.create_dataset(name, data=np.array(references, dtype=h5py.ref_dtype).reshape(21, 1))
            cell.attrs["MATLAB_class"] = np.bytes_("cell")
        labels = mat.create_dataset("labels", data=np.array(SPRITE_ATTRIBUTES[character], float).reshape(7, 1))
        labels.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .")


@pytest.fixture(scope="session")
def sprites_root(tmp_path_factory):
    """Characters 1 and 2 (train; train character 6 has no file) and 3 (test); val's only one is missing."""
    root = tmp_path_factory.mktemp("sprites_data")
    os.makedirs(root / "sprites")
    for character in (1, 2, 3):
        write_sprites_file(root / "sprites" / f"sprites_{character - 1}.mat", character)
    scipy.io.savemat(root / "sprites" / "sprites_splits.mat",
                     {"trainidx": np.array([[2, 1, 6]], np.uint16), "validx": np.array([[4]], np.uint16),
                      "testidx": np.array([[3]], np.uint16)})
    return root


def test_sprites_frames_upright_rgb_and_labelled(sprites_root, tmp_path, capsys):
    data = load_dataset(data_args("sprites", sprites_root, tmp_path), "train")
    assert "1 of the 3 train characters have no file" in capsys.readouterr().out
    assert data.class_names == ["character 1", "character 2"]
    assert data.images.shape == (2 * 4 * sum(SPRITE_FRAMES), 3, 64, 64) and data.images.dtype == torch.uint8
    frame = data.images[0]
    # black padding
    assert frame[:, :2].sum() == frame[:, -2:].sum() == frame[:, :, :2].sum() == frame[:, :, -2:].sum() == 0
    # 60x60 pattern at offset 2: red top-left bar, green bottom-left, blue top-right, nothing else there
    assert (frame[:, 2:12, 2:32] == torch.tensor([255, 0, 0]).view(3, 1, 1)).all()
    assert (frame[:, 52:62, 2:12] == torch.tensor([0, 255, 0]).view(3, 1, 1)).all()
    assert (frame[:, 2:12, 52:62] == torch.tensor([0, 0, 255]).view(3, 1, 1)).all()
    assert frame[:, 20:32, 2:12].sum() == 0 and frame[:, 52:62, 52:62].sum() == 0  # not transposed, not flipped
    marker = data.images[:, :, 32, 32].long()  # (character, clip, frame) of every frame
    style = data.style_labels
    assert (marker[:, 0] == data.labels + 1).all()  # characters 1 and 2 are classes 0 and 1
    assert (marker[:, 1] == style["action"] * 4 + style["viewpoint"]).all()  # clip 20 is left out
    assert (marker[:, 2] == style["frame"]).all()
    assert torch.bincount(style["action"]).tolist() == [2 * 4 * n for n in SPRITE_FRAMES]
    for name, column in zip(("body", "sex", "hair", "armor", "arm", "greaves", "weapon"), range(7)):
        expected = torch.tensor([SPRITE_ATTRIBUTES[c][column] for c in (1, 2)])[data.labels]
        assert (style[name] == expected).all(), name


def test_sprites_file_k_holds_character_k_plus_1(sprites_root, tmp_path):
    data = load_dataset(data_args("sprites", sprites_root, tmp_path), "test")
    assert data.class_names == ["character 3"]
    assert (data.images[:, 0, 32, 32] == 3).all()  # read from sprites_2.mat


def test_sprites_missing_files_are_clear_errors(sprites_root, tmp_path):
    with pytest.raises(CLIError, match="none of the 1 val characters.*nips2015-analogy-data.tar.gz"):
        load_dataset(data_args("sprites", sprites_root, tmp_path), "val")
    with pytest.raises(CLIError, match=f"no Sprites data in {tmp_path}.*sprites_splits.mat.*nips2015-analogy-data"):
        load_dataset(data_args("sprites", tmp_path, tmp_path), "train")
    broken = tmp_path / "broken"
    os.makedirs(broken / "sprites")
    scipy.io.savemat(broken / "sprites" / "sprites_splits.mat", {"trainidx": [[1]], "validx": [[2]], "testidx": [[3]]})
    (broken / "sprites" / "sprites_0.mat").write_bytes(b"MATLAB 7.3 MAT-file, truncated")
    with pytest.raises(CLIError, match="cannot read .*sprites_0.mat .*extract it again") as error:
        load_dataset(data_args("sprites", broken, tmp_path), "train")
    assert "\n" not in str(error.value)


def test_a_packed_split_loads_elsewhere_from_stand_ins_without_decoding(sprites_root, tmp_path, monkeypatch):
    """experiments/carry_dataset.py: the same frames and labels under another root, nothing decoded."""
    here = load_dataset(data_args("sprites", sprites_root, tmp_path / "here"), "train")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "here"))
    run_script("experiments/carry_dataset.py", "pack", "sprites", sprites_root, "train", tmp_path / "train.xz")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "there"))
    run_script("experiments/carry_dataset.py", "unpack", tmp_path / "train.xz", tmp_path / "root")
    assert os.path.getsize(tmp_path / "root" / "sprites" / "sprites_0.mat") == os.path.getsize(
        sprites_root / "sprites" / "sprites_0.mat")
    monkeypatch.setattr("data_loader.decode_sprites", lambda files: pytest.fail("decoded the stand-ins"))
    there = load_dataset(data_args("sprites", tmp_path / "root", tmp_path / "there" / "dfv"), "train")
    assert torch.equal(there.images, here.images) and torch.equal(there.labels, here.labels)
    assert there.class_names == here.class_names
    assert all(torch.equal(there.style_labels[name], here.style_labels[name]) for name in here.style_labels)
    run_script("experiments/carry_dataset.py", "unpack", tmp_path / "train.xz", tmp_path / "root")  # again: no harm


def test_unpacking_over_real_data_or_from_a_damaged_archive_is_refused_in_one_line(sprites_root, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run_script("experiments/carry_dataset.py", "pack", "sprites", sprites_root, "train", tmp_path / "train.xz")
    real = (sprites_root / "sprites" / "sprites_0.mat").read_bytes()
    refused = run_script("experiments/carry_dataset.py", "unpack", tmp_path / "train.xz", sprites_root, check=False)
    assert refused.returncode == 1 and "holds data" in refused.stderr and refused.stderr.count("\n") == 1
    assert (sprites_root / "sprites" / "sprites_0.mat").read_bytes() == real  # nothing overwritten
    (tmp_path / "damaged.xz").write_bytes((tmp_path / "train.xz").read_bytes()[:100])
    damaged = run_script("experiments/carry_dataset.py", "unpack", tmp_path / "damaged.xz", tmp_path / "root", check=False)
    assert damaged.returncode == 1 and "write it again" in damaged.stderr and damaged.stderr.count("\n") == 1


# ---------------------------------------------------------------------------------------------
# LINE-MOD fixture: {real,fine,coarse}/<object>/<set><i>.png, poses.txt, real/training_split.txt.

LINEMOD_COUNTS = {"real": 6, "fine": 3, "coarse": 2}
TRAINING_SPLIT = [1, 3, 4]


def linemod_pose(object_id, set_id, number):
    return [0.1 * object_id, 0.2 * set_id, 0.01 * number, 1.0]


@pytest.fixture(scope="session")
def linemod_root(tmp_path_factory):
    """2 objects; pixel (0, 0) of every image holds (object, set, number); real/cat has 2 unlisted extras."""
    root = tmp_path_factory.mktemp("linemod_data")
    for set_id, (set_name, count) in enumerate(LINEMOD_COUNTS.items()):
        for object_id, name in enumerate(["ape", "cat"]):
            folder = root / "linemod" / set_name / name
            os.makedirs(folder)
            lines = []
            for number in range(count + (2 if (set_name, name) == ("real", "cat") else 0)):
                image = np.full((64, 64, 3), 40 + 100 * object_id, np.uint8)
                image[0, 0] = object_id, set_id, number
                Image.fromarray(image).save(folder / f"{set_name}{number}.png")
                if number < count:
                    pose = linemod_pose(object_id, set_id, number)
                    lines += [f"# {set_name}{number}.png", " ".join(f"{v:.18e}" for v in pose)]
            (folder / "poses.txt").write_text("\n".join(lines) + "\n\n")
    (root / "linemod" / "real" / "training_split.txt").write_text(", ".join(map(str, TRAINING_SPLIT)) + "\r\n")
    return root


def check_linemod_labels(data):
    marker = data.images[:, :, 0, 0].long()
    assert (marker[:, 0] == data.labels).all() and (marker[:, 1] == data.style_labels["set"]).all()
    assert (marker[:, 2] == data.style_labels["number"]).all()
    poses = torch.tensor([linemod_pose(*row) for row in marker.tolist()])
    assert torch.allclose(data.style_labels["pose"], poses) and data.style_labels["pose"].dtype == torch.float32


def test_linemod_splits_poses_and_skipped_files(linemod_root, tmp_path, capsys):
    args = data_args("linemod", linemod_root, tmp_path)
    train_data = load_dataset(args, "train")
    assert "skipped" not in capsys.readouterr().out  # the unlisted extras are not training-split numbers
    test = load_dataset(args, "test")
    assert "linemod: skipped 2 test images that poses.txt does not list, in " in capsys.readouterr().out
    assert train_data.class_names == test.class_names == ["ape", "cat"]
    assert len(train_data.labels) == 2 * (len(TRAINING_SPLIT) + 3 + 2) and len(test.labels) == 2 * 3
    real = train_data.style_labels["set"] == 0
    assert set(train_data.style_labels["number"][real].tolist()) == set(TRAINING_SPLIT)
    assert set(test.style_labels["number"].tolist()) == {0, 2, 5}
    check_linemod_labels(train_data)
    check_linemod_labels(test)
    only_real = load_dataset(data_args("linemod", linemod_root, tmp_path, "--linemod-sets", "real"), "train")
    assert len(only_real.labels) == 2 * len(TRAINING_SPLIT) and (only_real.style_labels["set"] == 0).all()


def test_linemod_bad_input(linemod_root, tmp_path):
    with pytest.raises(CLIError, match="--linemod-sets takes .*real,fine,coarse"):
        load_dataset(data_args("linemod", linemod_root, tmp_path, "--linemod-sets", "real,shiny"), "train")
    with pytest.raises(CLIError, match=f"no folder {tmp_path}/linemod/real: expected linemod/"):
        load_dataset(data_args("linemod", tmp_path, tmp_path), "test")
    with pytest.raises(CLIError, match="linemod has no 'val' split"):
        load_dataset(data_args("linemod", linemod_root, tmp_path), "val")


# ---------------------------------------------------------------------------------------------
# Folder fixture: DIR/<class>/*.png|jpg.

def write_images(folder, colours, mode="RGB", size=(32, 24), suffix=".png"):
    os.makedirs(folder, exist_ok=True)
    for i, colour in enumerate(colours):
        Image.new(mode, size, colour).save(folder / f"{i:02d}{suffix}")


@pytest.fixture
def folder_root(tmp_path):
    root = tmp_path / "pictures"
    write_images(root / "cats", [(200, 10, 10)] * 3)
    write_images(root / "cats", [(210, 0, 0)], suffix=".jpg")  # 03.jpg
    write_images(root / "dogs", [(10, 10, 200)] * 4)
    return root


def test_folder_dataset_resized_split_per_class(folder_root, tmp_path):
    args = data_args("folder", folder_root, tmp_path / "cache", "--image-size", 16, "--test-fraction", 0.25)
    train_data, test = load_dataset(args, "train"), load_dataset(args, "test")
    assert train_data.class_names == ["cats", "dogs"] and train_data.image_shape == (3, 16, 16)
    assert torch.bincount(train_data.labels).tolist() == [3, 3] and torch.bincount(test.labels).tolist() == [1, 1]
    red = train_data.images[:, 0].float().mean((1, 2)) > train_data.images[:, 2].float().mean((1, 2))
    assert (red == (train_data.labels == 0)).all()  # each image kept its class
    assert torch.equal(load_dataset(args, "test").images, test.images)  # the split is deterministic


def test_folder_grayscale_kept_as_one_channel(tmp_path):
    root = tmp_path / "gray"
    write_images(root / "dark", [30, 40, 50], mode="L")
    write_images(root / "light", [200, 210, 220], mode="L")
    data = load_dataset(data_args("folder", root, tmp_path / "cache", "--image-size", 8), "train")
    assert data.image_shape == (1, 8, 8) and set(data.images[:, 0, 0, 0].tolist()) <= {30, 40, 50, 200, 210, 220}
    write_images(root / "light", [(0, 90, 0)], suffix=".jpg")  # one colour image: every image gets 3 channels
    resized = load_dataset(data_args("folder", root, tmp_path / "cache", "--image-size", 8), "train")
    assert resized.image_shape == (3, 8, 8)


def test_split_per_class():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 3)
    kept, held = split_per_class(labels, 0.2)
    assert torch.bincount(labels[held], minlength=3).tolist() == [2, 1, 1]  # round(0.2 * count): 2, 1, 0.6 -> 1
    assert sorted(torch.cat([kept, held]).tolist()) == list(range(18))
    again, _ = split_per_class(labels, 0.2)
    other, _ = split_per_class(labels, 0.2, seed=1)
    assert torch.equal(kept, again) and not torch.equal(kept, other)


# ---------------------------------------------------------------------------------------------
# The cache, and one-line errors for bad input.

def test_cache_hit_then_rebuilt_on_changed_source_or_option(folder_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the default --cache-dir lives under it
    args = train.build_parser().parse_args(["--dataset", "folder", "--data-root", str(folder_root),
                                            "--image-size", "16"])
    first = load_dataset(args, "train")
    assert "decoding 8 files" in capsys.readouterr().out
    cache_files = os.listdir(tmp_path / "xdg" / "dfv")
    assert len(cache_files) == 1 and not any(".pt" in name for _, _, names in os.walk(folder_root) for name in names)
    torch.load(tmp_path / "xdg" / "dfv" / cache_files[0], weights_only=True)
    second = load_dataset(args, "train")
    assert "decoding" not in capsys.readouterr().out and torch.equal(first.images, second.images)

    args.image_size = 8
    assert load_dataset(args, "train").image_shape == (3, 8, 8)
    assert "decoding 8 files" in capsys.readouterr().out
    args.image_size = 16
    write_images(folder_root / "dogs", [(10, 200, 10)])  # 00.png changes content, size and time
    os.utime(folder_root / "dogs" / "00.png", ns=(1, 1))
    changed = load_dataset(args, "train")
    assert "decoding 8 files" in capsys.readouterr().out
    dog_images = torch.cat([changed.images, load_dataset(args, "test").images])[:, 1].float().mean((1, 2))
    assert (dog_images > 150).sum() == 1  # the green dog is seen
    cache = os.listdir(tmp_path / "xdg" / "dfv")
    assert len(cache) == 3 and not any(".tmp" in name for name in cache)


def test_bad_folders_and_images_are_one_line_errors(folder_root, tmp_path):
    def error(root, dataset="folder"):
        args = data_args("folder", root, tmp_path / "cache")
        args.dataset = dataset  # past argparse's choices, as from an old config
        with pytest.raises(CLIError) as caught:
            load_dataset(args, "train")
        assert "\n" not in str(caught.value)
        return str(caught.value)

    assert "unknown dataset 'cifar'; choose one of mnist, sprites, linemod, folder" in error(folder_root, "cifar")
    assert f"no folder {tmp_path}/missing: expected DIR/<class>/" in error(tmp_path / "missing")
    os.makedirs(tmp_path / "empty")
    assert "empty holds no class folders: expected DIR/<class>/" in error(tmp_path / "empty")
    write_images(tmp_path / "one" / "cats", [(1, 2, 3)])
    assert "holds a single class folder (cats)" in error(tmp_path / "one")
    os.makedirs(folder_root / "birds")
    assert "birds holds no .png or .jpg images: add some or remove the folder" in error(folder_root)
    (folder_root / "birds" / "broken.png").write_bytes(b"not a png at all")
    assert f"cannot read image {folder_root}/birds/broken.png" in error(folder_root)
    valid = (folder_root / "cats" / "00.png").read_bytes()
    (folder_root / "birds" / "broken.png").write_bytes(valid[:len(valid) // 2])  # truncated
    assert "broken.png" in error(folder_root)


@pytest.mark.slow
def test_train_runs_on_sprites(sprites_root, tmp_path):
    out = tmp_path / "run"
    run_script("train.py", "--dataset", "sprites", "--data-root", sprites_root, "--cache-dir", tmp_path / "cache",
               "--batch-size", 8, "--max-iterations", 1, "--device", "cpu", "--out", out)
    config = json.loads((out / "config.json").read_text())
    assert config["image_shape"] == [3, 64, 64] and config["class_names"] == ["character 1", "character 2"]
    assert os.path.isfile(out / "swap_grid.png")


@pytest.mark.slow
def test_a_sprites_model_is_evaluated_on_part_of_its_characters_with_z_coloured_by_action(tmp_path, monkeypatch,
                                                                                        capsys):
    import evaluate
    roots = {"all": tmp_path / "all" / "sprites", "part": tmp_path / "part" / "sprites"}
    for name, characters in (("all", (1, 2, 3)), ("part", (1, 3))):
        os.makedirs(roots[name])
        for character in characters:
            write_sprites_file(roots[name] / f"sprites_{character - 1}.mat", character)
        scipy.io.savemat(roots[name] / "sprites_splits.mat",
                         {"trainidx": np.array([[1, 2, 3]], np.uint16), "validx": np.array([[4]], np.uint16),
                          "testidx": np.array([[3]], np.uint16)})
    run_script("train.py", "--dataset", "sprites", "--data-root", roots["all"].parent, "--cache-dir", tmp_path / "cache",
               "--batch-size", 8, "--max-iterations", 1, "--device", "cpu", "--out", tmp_path / "run")
    plotted = {}
    monkeypatch.setattr(evaluate, "plot_tsne", lambda mu, labels, names, *rest: plotted.update(labels=labels,
                                                                                                names=names))
    evaluate.main(["--checkpoint", str(tmp_path / "run"), "--data-root", str(roots["part"].parent),
                   "--probe-iterations", "20", "--judge-iterations", "5", "--swap-pairs", "20", "--tsne-images", "10",
                   "--device", "cpu", "--out", str(tmp_path / "eval")])
    assert "holds 2 of the 3 classes the checkpoint was trained on" in capsys.readouterr().out
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["probes"]["s"]["test_acc"] >= 0 and results["protocol"]["probe_eval_images"] == 2 * 7
    # z's t-SNE: coloured by the actions of the probes' held-out frames, not by their 2 characters
    assert plotted["names"] == ("spellcast", "thrust", "walk", "slash", "shoot")
    assert sorted(set(plotted["labels"].tolist())) == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------
# The real data (../shared/data), when DFV_DATA points at it.

real_data = pytest.mark.skipif(not REAL_DATA, reason="set DFV_DATA to the shared data folder")


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("real_cache")


@pytest.mark.slow
@real_data
def test_real_sprites_splits_orientation_and_colour(real_cache):
    args = data_args("sprites", REAL_DATA, real_cache)
    counts = {split: len(load_dataset(args, split).class_names) for split in ("val", "test")}
    data = load_dataset(args, "train")
    # 104 of 672 characters are here; sprites_<k>.mat being character k + 1 is what makes these counts
    assert counts == {"val": 8, "test": 16} and data.num_classes == 80
    assert len(data.labels) == 80 * 4 * (7 + 8 + 9 + 6 + 13)
    # the first frame against an independent reading: MATLAB's column-major 60x60x3 frame
    with h5py.File(os.path.join(REAL_DATA, "sprites", "sprites_0.mat"), "r") as mat:
        raw = mat[mat["sprites"][0, 0]][0]
    expected = torch.from_numpy(np.rint(raw.reshape(60, 60, 3, order="F") * 255).astype(np.uint8)).permute(2, 0, 1)
    assert torch.equal(data.images[0, :, 2:62, 2:62], expected)
    walking = data.images[data.style_labels["action"] == 2].float()
    foreground = walking.amax(1) > 0  # (N, 64, 64)
    assert foreground[:, :32].float().mean() > foreground[:, 32:].float().mean()  # big heads, thin legs: upright
    rows, columns = foreground.any(2).float(), foreground.any(1).float()
    assert rows.sum(1).mean() > 1.5 * columns.sum(1).mean()  # standing figures are taller than wide
    red, _, blue = (walking[:, channel][foreground].mean() for channel in range(3))
    assert red > blue  # skin, hair and leather are warm colours: channels are RGB, not BGR


@pytest.mark.slow
@real_data
def test_real_linemod_counts_and_poses(real_cache, capsys):
    args = data_args("linemod", REAL_DATA, real_cache)
    train_data, test = load_dataset(args, "train"), load_dataset(args, "test")
    assert "skipped 75 test images that poses.txt does not list" in capsys.readouterr().out
    assert train_data.class_names == ["ape", "benchvise", "cam", "cat", "duck"]
    assert torch.bincount(train_data.labels).tolist() == [471 + 1011 + 267] * 5
    assert torch.bincount(test.labels).tolist() == [1178 - 471] * 5
    assert torch.bincount(train_data.style_labels["set"]).tolist() == [471 * 5, 1011 * 5, 267 * 5]
    assert torch.allclose(test.style_labels["pose"].norm(dim=1), torch.ones(len(test.labels)), atol=1e-4)
    assert train_data.image_shape == (3, 64, 64)


@pytest.mark.slow
@real_data
def test_real_folder_of_linemod_renders(real_cache):
    args = data_args("folder", os.path.join(REAL_DATA, "linemod", "coarse"), real_cache, "--image-size", 32)
    train_data, test = load_dataset(args, "train"), load_dataset(args, "test")
    assert train_data.image_shape == (3, 32, 32) and train_data.num_classes == 5
    assert torch.bincount(test.labels).tolist() == [53] * 5 and torch.bincount(train_data.labels).tolist() == [214] * 5


# ---------------------------------------------------------------------------------------------
# MNIST's val split.

def test_mnist_val_split_is_the_last_training_digits(mnist_root, tmp_path):
    whole = load_dataset(data_args("mnist", mnist_root, tmp_path), "train")
    args = data_args("mnist", mnist_root, tmp_path, "--val-size", 30)
    train_split, val = load_dataset(args, "train"), load_dataset(args, "val")
    assert len(train_split.labels) == 170 and len(val.labels) == 30
    assert torch.equal(torch.cat([train_split.images, val.images]), whole.images)  # disjoint, in order
    assert torch.equal(load_dataset(args, "test").images, load_dataset(data_args("mnist", mnist_root, tmp_path),
                                                                       "test").images)
    with pytest.raises(CLIError, match="mnist has no 'val' split.*--val-size"):
        load_dataset(data_args("mnist", mnist_root, tmp_path), "val")
    with pytest.raises(CLIError, match="--val-size 200 leaves no training digits"):
        load_dataset(data_args("mnist", mnist_root, tmp_path, "--val-size", 200), "train")


@pytest.mark.slow
@pytest.mark.skipif(not REAL_DATA, reason="set DFV_DATA to the shared data folder")
def test_real_full_mnist_val_split(tmp_path):
    args = data_args("mnist", os.path.join(REAL_DATA, "mnist-full"), tmp_path, "--val-size", 5000)
    sizes = {split: len(load_dataset(args, split).labels) for split in ("train", "val", "test")}
    assert sizes == {"train": 55000, "val": 5000, "test": 10000}
    subset = load_dataset(data_args("mnist", REAL_DATA, tmp_path), "train")  # the first 10,000 digits
    first = load_dataset(data_args("mnist", os.path.join(REAL_DATA, "mnist-full"), tmp_path, "--val-size", 50000),
                         "train")
    assert torch.equal(first.images, subset.images)  # --val-size 50000 trains on the subset
