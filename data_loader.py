"""Datasets as uint8 tensors on the training device, and vectorized same-class pairing.

A dataset is loaded once into an (N, C, H, W) uint8 tensor plus labels; a batch is an
index gather converted to float in [0, 1]. Pairs come from a class-sorted index, so
drawing a partner for every image of a batch is a handful of tensor ops, not a loop.

Sprites, LINE-MOD and image folders are read in the formats they are distributed in.
Decoding them is slow, so the first load writes the decoded uint8 tensors to a cache
under --cache-dir, keyed on the source files (path, size, modification time) and on the
options that change the decoded values; later loads read the cache.
"""
import hashlib
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageOps

from utils import CLIError, first_line, save_atomically

DATASETS = ("mnist", "sprites", "linemod", "folder")
CACHE_FORMAT = 1  # part of every cache key: bump it when decoding changes, so old caches are rebuilt


@dataclass
class Dataset:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64 class ids: what the specified code s should capture
    class_names: list
    # name -> (N, ...) tensor, for evaluation: int64 factors (Sprites action, viewpoint, ...)
    # or float32 (N, 4) LINE-MOD pose quaternions
    style_labels: dict = field(default_factory=dict)

    @property
    def image_shape(self):
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self):
        return len(self.class_names)

    def to(self, device):
        return Dataset(self.images.to(device), self.labels.to(device), self.class_names,
                       {name: values.to(device) for name, values in self.style_labels.items()})


def load_dataset(args, split):
    """Load a split of args.dataset into CPU tensors: 'train' or 'test'; 'val' for Sprites and for
    MNIST with --val-size.

    `args` is train.py's namespace (or any object with its data flags: dataset, data_root, val_size,
    cache_dir, linemod_sets, image_size, test_fraction).
    """
    if args.dataset not in DATASETS:
        raise CLIError(f"unknown dataset '{args.dataset}'; choose one of {', '.join(DATASETS)}")
    splits = dataset_splits(args)
    if split not in splits:
        hint = "; MNIST has one with --val-size N" if args.dataset == "mnist" and split == "val" else ""
        raise CLIError(f"{args.dataset} has no '{split}' split; it has {', '.join(splits)}{hint}")
    if args.dataset == "mnist":
        return load_mnist(args.data_root, split, args.val_size)
    if args.dataset == "sprites":
        return load_sprites(args.data_root, split, args.cache_dir)
    if args.dataset == "linemod":
        return load_linemod(args.data_root, split, args.linemod_sets, args.cache_dir)
    return load_folder(args.data_root, split, args.image_size, args.test_fraction, args.cache_dir)


def dataset_splits(args):
    """Sprites ships a val split of its own; MNIST has one when --val-size holds digits out."""
    if args.dataset == "sprites" or (args.dataset == "mnist" and args.val_size):
        return ("train", "val", "test")
    return ("train", "test")


def split_per_class(labels, fraction, seed=0):
    """Deterministic random split of every class: (kept, held) index tensors, sorted.

    `held` has round(fraction * count) images of each class. It is the folder dataset's
    test split, and lets evaluation hold out images of the training classes (say 20% of
    every Sprites character of the train split). `labels` must be on the CPU.
    """
    rng = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(len(labels), generator=rng)
    order = shuffled[torch.argsort(labels[shuffled], stable=True)]  # class blocks, shuffled inside
    count = torch.bincount(labels)
    start = torch.cumsum(count, 0) - count
    ordered_labels = labels[order]
    rank = torch.arange(len(labels)) - start[ordered_labels]  # position inside its class block
    held = rank < torch.round(count * fraction).long()[ordered_labels]
    return order[~held].sort().values, order[held].sort().values


def load_mnist(data_root, split, val_size=0):
    """The official train and test sets; with val_size N, the last N training digits form 'val'
    and 'train' keeps the others, so training never sees them."""
    from torchvision.datasets import MNIST
    raw = os.path.join(data_root, "MNIST", "raw")
    try:
        mnist = MNIST(root=data_root, train=split != "test", download=True)
    except Exception as error:  # offline download failures surface as several exception types
        raise CLIError(f"MNIST is not in {raw} and could not be downloaded ({type(error).__name__}): "
                       f"connect to the internet or pass --data-root DIR with DIR/MNIST/raw holding "
                       f"the four uncompressed IDX files") from error
    images, labels = mnist.data.unsqueeze(1), mnist.targets.long()
    if val_size >= len(labels):
        raise CLIError(f"--val-size {val_size} leaves no training digits: {raw} holds {len(labels)}; "
                       f"pass a smaller --val-size")
    if split != "test":
        kept = slice(len(labels) - val_size, None) if split == "val" else slice(0, len(labels) - val_size)
        images, labels = images[kept], labels[kept]
    return Dataset(images.contiguous(), labels, [str(d) for d in range(10)])


# ---------------------------------------------------------------------------------------------
# 2D Sprites (Reed et al., NIPS 2015): DIR/sprites/sprites_splits.mat and sprites_<k>.mat.

SPRITES_ARCHIVE = "nips2015-analogy-data.tar.gz (Reed et al., NIPS 2015)"
SPRITES_SPLITS = {"train": "trainidx", "val": "validx", "test": "testidx"}
SPRITES_ATTRIBUTES = ("body", "sex", "hair", "armor", "arm", "greaves", "weapon")
SPRITES_ACTIONS = ("spellcast", "thrust", "walk", "slash", "shoot")  # the order of the clips in a file


def load_sprites(data_root, split, cache_dir):
    """The characters of `split` in sprites_splits.mat whose file is present; class = character.

    Style labels per frame: action (SPRITES_ACTIONS), viewpoint (0-3),
    frame index within the animation, and the character's 7 attributes.
    """
    folder = os.path.join(data_root, "sprites")
    files = sprites_files(folder)
    splits_path = os.path.join(folder, "sprites_splits.mat")
    if not files or not os.path.isfile(splits_path):
        raise CLIError(f"no Sprites data in {folder}: expected sprites_splits.mat and sprites_<k>.mat there; "
                       f"extract the data/sprites folder of {SPRITES_ARCHIVE} there, or pass --data-root DIR whose "
                       f"sprites/ holds them")
    wanted = read_sprites_split(splits_path, split)
    present = [number for number in wanted if number in files]
    if not present:
        raise CLIError(f"none of the {len(wanted)} {split} characters listed in {splits_path} has its "
                       f"sprites_<k>.mat in {folder}; extract the data/sprites folder of {SPRITES_ARCHIVE} into it")
    if len(present) < len(wanted):
        print(f"sprites: {len(wanted) - len(present)} of the {len(wanted)} {split} characters have no file "
              f"in {folder}; using the other {len(present)}")
    chosen = {number: files[number] for number in present}
    data = cached("sprites", list(chosen.values()), {}, cache_dir, lambda: decode_sprites(chosen))
    labels = torch.searchsorted(torch.tensor(present), data["character"])  # classes 0.. in character order
    style = {name: data[name] for name in ("action", "viewpoint", "frame", *SPRITES_ATTRIBUTES)}
    return Dataset(data["images"], labels, [f"character {number}" for number in present], style)


def sprites_files(folder):
    """{character number: path}. sprites_<k>.mat holds character k + 1: the splits count from 1."""
    if not os.path.isdir(folder):
        return {}
    matches = (re.fullmatch(r"sprites_(\d+)\.mat", name) for name in os.listdir(folder))
    return {int(match[1]) + 1: os.path.join(folder, match[0]) for match in matches if match}


def read_sprites_split(path, split):
    """Sorted character numbers (1-based) of one split of sprites_splits.mat (MATLAB v5)."""
    import scipy.io  # imported here: only Sprites needs it, and start-up time counts
    try:
        return sorted(int(number) for number in np.ravel(scipy.io.loadmat(path)[SPRITES_SPLITS[split]]))
    except (OSError, ValueError, KeyError, NotImplementedError) as error:
        raise CLIError(f"cannot read {path} ({first_line(error)}): expected trainidx, validx and testidx "
                       f"(MATLAB v5) as in {SPRITES_ARCHIVE}") from error


def decode_sprites(files):
    """{character number: path} -> one dict of tensors: images and per-frame labels."""
    parts = [read_sprites_file(path, number) for number, path in files.items()]
    return {name: torch.from_numpy(np.concatenate([part[name] for part in parts])) for name in parts[0]}


def read_sprites_file(path, number):
    """One character's 20 animations: (n, 3, 64, 64) uint8 frames and their labels.

    In MATLAB an animation is a (10800, n_frames) matrix whose columns are 60x60x3 (row,
    column, channel) frames flattened column-major. h5py shows that matrix transposed, one
    frame per row, and inside a row the image row index runs fastest: (channel, column, row).
    """
    import h5py  # imported here: only Sprites needs it
    try:
        with h5py.File(path, "r") as mat:
            # entries 1-20 are 5 actions x 4 viewpoints; the 21st, an extra animation, is left out
            clips = [mat[reference][()] for reference in np.ravel(mat["sprites"][()])[:20]]
            attributes = np.ravel(mat["labels"][()]).astype(np.int64)
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise CLIError(f"cannot read {path} ({first_line(error)}): the file is damaged or not a Sprites "
                       f"character file; extract it again from {SPRITES_ARCHIVE}") from error
    if len(clips) != 20 or len(attributes) != 7 or any(clip.ndim != 2 or clip.shape[1] != 10800 for clip in clips):
        raise CLIError(f"{path} is not a Sprites character file (expected 20 animations of shape "
                       f"(frames, 10800) and 7 labels); extract it again from {SPRITES_ARCHIVE}")
    frames = np.concatenate(clips).reshape(-1, 3, 60, 60).transpose(0, 1, 3, 2)  # -> (n, channel, row, column)
    images = np.pad(np.rint(frames * 255).astype(np.uint8), ((0, 0), (0, 0), (2, 2), (2, 2)))  # black border to 64x64
    clip = np.repeat(np.arange(20), [len(frames) for frames in clips])
    return {"images": images, "character": np.full(len(clip), number),
            "action": clip // 4, "viewpoint": clip % 4,  # clips are action-major
            "frame": np.concatenate([np.arange(len(frames)) for frames in clips]),
            **{name: np.full(len(clip), value) for name, value in zip(SPRITES_ATTRIBUTES, attributes)}}


# ---------------------------------------------------------------------------------------------
# LINE-MOD crops in the layout of Wohlhart & Lepetit (CVPR 2015).

LINEMOD_SETS = ("real", "fine", "coarse")  # photographs; renders from a fine and a coarse view sampling
LINEMOD_LAYOUT = ("expected linemod/{real,fine,coarse}/<object>/<set><i>.png with a poses.txt in every "
                  "object folder and linemod/real/training_split.txt (the layout of Wohlhart & Lepetit, CVPR 2015)")


def load_linemod(data_root, split, linemod_sets, cache_dir):
    """Class = object (folders of real/, sorted). Train: the real images in training_split.txt
    plus every image of the other chosen sets; test: the other real images.

    Style labels: pose (quaternion), set (index into LINEMOD_SETS) and number, the i of
    <set><i>.png: in fine/ and coarse/ the same i is the same view for every object.
    """
    root = os.path.join(data_root, "linemod")
    objects = class_folders(os.path.join(root, "real"), LINEMOD_LAYOUT)
    training_split = read_training_split(os.path.join(root, "real", "training_split.txt"))
    sets = parse_linemod_sets(linemod_sets) if split == "train" else ["real"]
    paths, object_ids, set_ids, numbers, poses, listed = list_linemod(root, sets, objects)
    in_training_split = (set_ids != 0) | np.isin(numbers, training_split)  # set 0 is real
    keep = in_training_split if split == "train" else ~in_training_split
    skipped = keep & ~listed
    if skipped.any():
        folders = sorted({os.path.dirname(path) for path in paths[skipped]})
        print(f"linemod: skipped {skipped.sum()} {split} images that poses.txt does not list, in {', '.join(folders)}")
    keep &= listed
    if not keep.any():
        raise CLIError(f"the LINE-MOD {split} split in {root} is empty: check real/training_split.txt and "
                       f"--linemod-sets")
    chosen = list(paths[keep])
    data = cached("linemod", chosen, {}, cache_dir, lambda: {"images": decode_images(chosen)[0]})
    style = {"pose": torch.from_numpy(poses[keep]).float(), "set": torch.from_numpy(set_ids[keep]),
             "number": torch.from_numpy(numbers[keep])}
    return Dataset(data["images"], torch.from_numpy(object_ids[keep]), objects, style)


def parse_linemod_sets(text):
    sets = {name.strip() for name in text.split(",") if name.strip()}
    if not sets or not sets <= set(LINEMOD_SETS):
        raise CLIError(f"--linemod-sets takes a comma-separated choice of {','.join(LINEMOD_SETS)}, got '{text}'")
    return [name for name in LINEMOD_SETS if name in sets]


def read_training_split(path):
    """Indices i of the real<i>.png images that form the training split (comma-separated)."""
    try:
        with open(path) as handle:
            return np.array([int(index) for index in re.findall(r"\d+", handle.read())], dtype=np.int64)
    except OSError as error:
        raise CLIError(f"cannot read {path} ({error.strerror}): {LINEMOD_LAYOUT}") from error


def list_linemod(root, sets, objects):
    """Every .png of the chosen sets, as arrays: path, object id, set id, number, pose, and
    whether poses.txt lists it (real data is untidy: real/duck holds unlisted extras)."""
    rows = []
    for set_name in sets:
        for object_id, name in enumerate(objects):
            folder = os.path.join(root, set_name, name)
            poses = read_poses(folder)
            files = {file for file in os.listdir(folder) if file.endswith(".png")}
            missing = sorted(poses.keys() - files)
            if missing:
                raise CLIError(f"{folder}/poses.txt lists {len(missing)} images that are not there "
                               f"({missing[0]}, ...): "
                               f"restore them from the dataset's archive")
            for file in sorted(files, key=file_number):
                rows.append((os.path.join(folder, file), object_id, LINEMOD_SETS.index(set_name), file_number(file),
                             poses.get(file, [np.nan] * 4), file in poses))
    return [np.array(column) for column in zip(*rows)]


def read_poses(folder):
    """{file name: quaternion} from a folder's poses.txt: '# <file>' lines, each followed by 4 numbers."""
    path = os.path.join(folder, "poses.txt")
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError as error:
        raise CLIError(f"cannot read {path} ({error.strerror}): {LINEMOD_LAYOUT}; "
                       f"or leave that set out with --linemod-sets") from error
    entries = re.findall(r"#\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text)
    try:
        poses = {name: [float(value) for value in values] for name, *values in entries}
    except ValueError:
        poses = {}
    if not poses or len(poses) != text.count("#"):
        raise CLIError(f"cannot parse {path}: expected, for every image, a line '# <file name>' "
                       f"followed by a line of 4 numbers (the pose quaternion)")
    return poses


def file_number(file):
    """i of <set><i>.png (-1 for a name without a number)."""
    match = re.search(r"(\d+)\.png$", file)
    return int(match[1]) if match else -1


# ---------------------------------------------------------------------------------------------
# Any folder of images: DIR/<class>/*.png|jpg, torchvision's ImageFolder layout.

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
FOLDER_LAYOUT = "expected DIR/<class>/*.png|jpg, one subfolder of images per class (pass DIR with --data-root)"


def load_folder(data_root, split, image_size, test_fraction, cache_dir):
    """Images fitted to image_size x image_size; the test split is a fixed test_fraction of each class.

    One channel when every image is grayscale, else RGB.
    """
    if image_size <= 0 or not 0 < test_fraction < 1:
        raise CLIError(f"--image-size must be positive and --test-fraction in (0, 1), "
                       f"got {image_size} and {test_fraction}")
    classes = class_folders(data_root, FOLDER_LAYOUT)
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(data_root, name)
        files = sorted(file for file in os.listdir(folder) if file.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise CLIError(f"{folder} holds no .png or .jpg images: add some or remove the folder")
        paths += [os.path.join(folder, file) for file in files]
        labels += [label] * len(files)
    data = cached("folder", paths, {"image_size": image_size}, cache_dir, lambda: decode_folder(paths, image_size))
    labels = torch.tensor(labels)
    train, test = split_per_class(labels, test_fraction)  # the whole folder is cached; the split is cheap
    chosen = train if split == "train" else test
    if len(chosen) == 0:
        raise CLIError(f"the {split} split of {data_root} is empty with --test-fraction {test_fraction}: "
                       f"change --test-fraction or add images")
    return Dataset(data["images"][chosen], labels[chosen], classes)


def decode_folder(paths, size):
    images, grayscale = decode_images(paths, size)
    # grayscale files were expanded to 3 equal channels; clone so the cache holds 1 channel, not the view's storage
    return {"images": images[:, :1].clone() if grayscale else images}


def class_folders(folder, layout):
    """Sorted names of the subfolders of `folder`: the classes, numbered in this order."""
    if not os.path.isdir(folder):
        raise CLIError(f"no folder {folder}: {layout}")
    names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise CLIError(f"{folder} holds no class folders: {layout}")
    if len(names) == 1:
        raise CLIError(f"{folder} holds a single class folder ({names[0]}), but the class code needs "
                       f"at least two classes to tell apart: {layout}")
    return names


# ---------------------------------------------------------------------------------------------
# Decoding image files, and the cache of decoded tensors.

GRAYSCALE_MODES = ("1", "L", "LA")  # PIL modes of grayscale files


def decode_images(paths, size=None):
    """(N, 3, H, W) uint8 tensor of image files (fitted to size x size when given: centre crop
    to the target shape, then resize), and whether every file was grayscale."""
    decoded = [read_image(path, size) for path in paths]
    shape = decoded[0][0].shape
    for path, (image, _) in zip(paths, decoded):
        if image.shape != shape:
            raise CLIError(f"{path} is {image.shape[1]}x{image.shape[0]} but {paths[0]} is {shape[1]}x{shape[0]}: "
                           f"this dataset's images must all have one size")
    images = torch.from_numpy(np.stack([image for image, _ in decoded])).permute(0, 3, 1, 2).contiguous()
    return images, all(grayscale for _, grayscale in decoded)


def read_image(path, size=None):
    """(H, W, 3) uint8 RGB array of one image file, and whether the file is grayscale."""
    try:
        with Image.open(path) as image:
            grayscale = image.mode in GRAYSCALE_MODES
            image = image.convert("RGB")
            if size:
                image = ImageOps.fit(image, (size, size), Image.Resampling.BILINEAR)
            return np.asarray(image), grayscale
    except (OSError, SyntaxError, ValueError) as error:  # how PIL reports unknown, broken or truncated files
        raise CLIError(f"cannot read image {path} ({first_line(error)}): replace or remove that file") from error


def cache_folder(cache_dir):
    """--cache-dir, else $XDG_CACHE_HOME/dfv, else ~/.cache/dfv: never the data folder, which may be read-only."""
    return cache_dir or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dfv")


def cache_path(name, sources, options, cache_dir):
    """The cache file of these source files and options.

    The key covers each source file's path, size and modification time and the options that
    change the decoded values, so an edited, added or removed file or a new option rebuilds it.
    """
    stamps = [(os.path.abspath(path), stat.st_size, stat.st_mtime_ns) for path, stat in
              ((path, os.stat(path)) for path in sources)]
    key = hashlib.sha256(json.dumps([CACHE_FORMAT, name, options, stamps]).encode()).hexdigest()[:20]
    return os.path.join(cache_folder(cache_dir), f"{name}-{key}.pt")


def cached(name, sources, options, cache_dir, build):
    """build() -> dict of tensors, run only when no cache for these sources and options exists."""
    path = cache_path(name, sources, options, cache_dir)
    if os.path.isfile(path):
        try:
            return torch.load(path, weights_only=True, mmap=True)  # mmap: a split reads only its pages
        except Exception as error:  # written atomically, so only a disk fault gets here: decode again
            print(f"{name}: the cache {path} is unreadable ({type(error).__name__}); decoding again")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)  # before decoding: fail fast on a bad --cache-dir
    except OSError as error:
        raise CLIError(f"cannot create the cache folder {os.path.dirname(path)} ({error.strerror}): "
                       f"pass --cache-dir DIR with a writable folder") from error
    print(f"{name}: decoding {len(sources)} files, once; cached in {path}", flush=True)
    data = build()
    save_atomically(data, path)
    return data


def to_float(images):
    """uint8 images -> float in [0, 1]; done per batch so the dataset stays uint8 on the device."""
    return images.float().div_(255)


def random_shift(images, max_shift, rng):
    """Translate each (C, H, W) image by its own random offset of up to max_shift pixels.

    Edges are replicated, so a shift never paints a border the dataset does not have.
    """
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, [max_shift] * 4, mode="replicate")
    dy, dx = torch.randint(2 * max_shift + 1, (2, n, 1, 1), generator=rng, device=rng.device)
    rows = dy + torch.arange(height, device=images.device).view(1, height, 1)
    cols = dx + torch.arange(width, device=images.device).view(1, 1, width)
    batch = torch.arange(n, device=images.device).view(n, 1, 1)
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2)  # advanced indexing puts C last


# ---------------------------------------------------------------------------------------------
# Sampling: an endless stream of reshuffled passes, and same-class partners.

def new_stream(size, rng):
    """State of an endless sequence of random permutations of range(size)."""
    return {"size": size, "order": torch.randperm(size, generator=rng, device=rng.device),
            "position": 0}


def draw_indices(stream, count, rng):
    """The next `count` indices; a new pass is reshuffled when the current one runs out.

    The tail of a pass is kept and continued by the next permutation, so every image
    appears exactly once per pass (nothing is dropped, unlike drop_last).
    """
    order, position = stream["order"], stream["position"]
    while len(order) - position < count:
        fresh = torch.randperm(stream["size"], generator=rng, device=rng.device)
        order, position = torch.cat([order[position:], fresh]), 0
    stream["order"], stream["position"] = order, position + count
    return order[position:position + count]


def class_index(labels, num_classes):
    """Class-sorted index of a label vector: computed once, used for every partner and x3 draw (the
    classes present too, so that a draw by class never asks the device which they are)."""
    order = torch.argsort(labels, stable=True)
    count = torch.bincount(labels, minlength=num_classes)
    start = torch.cumsum(count, 0) - count
    rank = torch.empty_like(labels)  # position of each image inside its class block
    rank[order] = torch.arange(len(labels), device=labels.device) - start[labels[order]]
    return {"order": order, "start": start, "count": count, "rank": rank, "present": torch.nonzero(count).flatten()}


def draw_partners(anchors, labels, index, rng):
    """For each anchor, a uniformly drawn *other* image of the same class (itself if alone)."""
    label = labels[anchors]
    count = index["count"][label]
    uniform = torch.rand(len(anchors), generator=rng, device=rng.device)
    offset = 1 + (uniform * (count - 1)).long()  # in 1 .. count-1: never the anchor itself
    return index["order"][index["start"][label] + (index["rank"][anchors] + offset) % count]


def draw_by_uniform_class(size, index, rng):
    """`size` images, each drawn by picking a class uniformly among those present and then an image
    of it uniformly: the authors' x3, whatever the classes' frequencies."""
    present = index["present"]
    classes = present[torch.randint(len(present), (size,), generator=rng, device=rng.device)]
    within = (torch.rand(size, generator=rng, device=rng.device) * index["count"][classes]).long()
    return index["order"][index["start"][classes] + within]


def one_of_each(values, wanted, rng):
    """For each v in `wanted`, a random index i with values[i] == v: the sources of a swap grid."""
    choices = []
    for value in wanted:  # a handful of grid rows, once per run: no need to vectorize
        members = torch.nonzero(values == value)[:, 0]
        choices.append(members[torch.randint(len(members), (1,), generator=rng)])
    return torch.cat(choices)


GRID_CLASSES = {"sprites": 8, "linemod": None}  # columns of a swap grid; None = every class; others 10


def grid_sources(data, dataset, seed, views=None):
    """Indices into `data` of a swap grid's (style sources = rows, class sources = columns).

    Columns: a random image of each of the first classes (MNIST 10 digits, Sprites 8 characters,
    LINE-MOD every object). Rows: the same images, or, given int view labels, one image per view.
    """
    rng = torch.Generator().manual_seed(seed)
    labels = data.labels.cpu()
    columns = one_of_each(labels, torch.unique(labels)[:GRID_CLASSES.get(dataset, 10)], rng)
    if views is None:
        return columns, columns
    views = views.cpu()
    return one_of_each(views, torch.unique(views), rng), columns
