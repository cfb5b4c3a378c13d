"""Carry one decoded split of a dataset to a machine that lacks its source files, in a few MB.

A GPU machine lent here takes at most 64 MiB with a job. Sprites' 500 training characters are
270 MB of .mat files, but their decoded frames are mostly background and compress about 100x.
`pack` stores the loader's cache of one split, the size and modification time of every large file
of the dataset's folder, and the small files the loader reads itself (sprites_splits.mat).
`unpack` recreates the folder with empty stand-ins of the same size and time for the large files and
writes the cache under the key those stand-ins give, so train.py loads the same uint8 tensors and
decodes nothing.

    python experiments/carry_dataset.py pack sprites DIR train sprites-train.xz
    python experiments/carry_dataset.py unpack sprites-train.xz DEST    # then: train.py --data-root DEST
"""
import argparse
import io
import lzma
import os
import pickle
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import data_loader  # noqa: E402
import train  # noqa: E402
from utils import CLIError, run_cli, save_atomically  # noqa: E402

SMALL_FILE = 64 * 1024  # files up to this size travel whole: the loader may read them outside its cache


def load_recording_cache(dataset, data_root, split, build=None):
    """Load a split as train.py does; -> the dataset and the cache call's (name, sources, options).
    build, if given, replaces the decoder: unpack passes one that fails, so a cache miss is an error."""
    calls, cached = [], data_loader.cached

    def recording(name, sources, options, cache_dir, decode):
        calls.append((name, list(sources), options))
        return cached(name, sources, options, cache_dir, build or decode)
    data_loader.cached = recording
    try:
        data = data_loader.load_dataset(train.build_parser().parse_args(["--dataset", dataset, "--data-root",
                                                                          data_root]), split)
    finally:
        data_loader.cached = cached
    if len(calls) != 1:
        raise CLIError(f"{dataset} read {len(calls)} caches; carry_dataset.py handles datasets with one")
    return data, calls[0]


def pack(dataset, data_root, split, archive):
    data, (name, sources, options) = load_recording_cache(dataset, data_root, split)
    tensors = torch.load(data_loader.cache_path(name, sources, options, None), weights_only=True)
    tensors["images"] = tensors["images"].permute(0, 2, 3, 1).contiguous()  # channels last compresses 2x better
    stand_ins, files, source_paths = {}, {}, set(map(os.path.abspath, sources))
    for folder, _, names in os.walk(os.path.join(data_root, dataset)):
        for file_name in names:
            path = os.path.join(folder, file_name)
            relative, stat = os.path.relpath(path, data_root), os.stat(path)
            if stat.st_size > SMALL_FILE or os.path.abspath(path) in source_paths:
                stand_ins[relative] = (stat.st_size, stat.st_mtime_ns)
            else:
                with open(path, "rb") as small:
                    files[relative] = (small.read(), stat.st_mtime_ns)
    payload = dict(dataset=dataset, split=split, name=name, options=options, images=len(data.images),
                   sources=[os.path.relpath(path, data_root) for path in sources],
                   stand_ins=stand_ins, files=files, tensors=tensors)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with open(archive, "wb") as out:
        out.write(lzma.compress(buffer.getvalue(), preset=6))
    print(f"{archive}: {dataset} {split}, {len(data.images)} images, {len(stand_ins)} stand-ins, "
          f"{len(files)} small files, {os.path.getsize(archive) / 2**20:.1f} MiB")


def unpack(archive, data_root):
    try:
        with open(archive, "rb") as packed:
            payload = torch.load(io.BytesIO(lzma.decompress(packed.read())), weights_only=False)
    except (lzma.LZMAError, EOFError, pickle.UnpicklingError, RuntimeError) as error:
        raise CLIError(f"cannot read {archive} ({type(error).__name__}): write it again with "
                       f"carry_dataset.py pack") from error
    refuse_to_overwrite(payload, data_root)
    for relative, (size, mtime) in payload["stand_ins"].items():
        path = os.path.join(data_root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as stand_in:
            stand_in.truncate(size)  # sparse: takes no disk
        os.utime(path, ns=(mtime, mtime))
    for relative, (content, mtime) in payload["files"].items():
        path = os.path.join(data_root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as small:
            small.write(content)
        os.utime(path, ns=(mtime, mtime))
    tensors = payload["tensors"]
    tensors["images"] = tensors["images"].permute(0, 3, 1, 2).contiguous()
    sources = [os.path.join(data_root, relative) for relative in payload["sources"]]
    cache = data_loader.cache_path(payload["name"], sources, payload["options"], None)
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    save_atomically(tensors, cache)

    def refuse():
        raise CLIError(f"the stand-ins under {data_root} do not give the packed cache's key; nothing to decode")
    data, _ = load_recording_cache(payload["dataset"], data_root, payload["split"], build=refuse)
    if len(data.images) != payload["images"]:
        raise CLIError(f"{archive} packed {payload['images']} images, the loader finds {len(data.images)}")
    print(f"{data_root}: {payload['dataset']} {payload['split']} ready, {len(data.images)} images")


def refuse_to_overwrite(payload, data_root):
    """Unpacking writes stand-ins over the dataset's files: only where a file is absent or is
    already what this archive writes (another split of the same pack), never over real data."""
    for relative, (size, mtime) in payload["stand_ins"].items():
        path = os.path.join(data_root, relative)
        if os.path.exists(path) and (os.path.getsize(path), os.stat(path).st_mtime_ns) != (size, mtime):
            raise CLIError(f"{path} exists and is not this archive's stand-in: unpack into another folder")
        if os.path.exists(path) and any(read_bytes(path, 1 << 16)):
            raise CLIError(f"{path} holds data (a stand-in is all zeros): unpack into another folder")
    for relative, (content, _) in payload["files"].items():
        path = os.path.join(data_root, relative)
        if os.path.exists(path) and read_bytes(path) != content:
            raise CLIError(f"{path} exists with other contents: unpack into another folder")


def read_bytes(path, limit=-1):
    with open(path, "rb") as handle:
        return handle.read(limit)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    verbs = parser.add_subparsers(dest="verb", required=True)
    packing = verbs.add_parser("pack", help="write ARCHIVE from DIR's decoded SPLIT")
    packing.add_argument("dataset", choices=["sprites", "linemod"])
    packing.add_argument("data_root", metavar="DIR")
    packing.add_argument("split")
    packing.add_argument("archive")
    unpacking = verbs.add_parser("unpack", help="lay ARCHIVE out under DEST for train.py --data-root DEST")
    unpacking.add_argument("archive")
    unpacking.add_argument("data_root", metavar="DEST")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.verb == "pack":
        pack(args.dataset, args.data_root, args.split, args.archive)
    else:
        unpack(args.archive, args.data_root)


if __name__ == "__main__":
    run_cli(main, build_parser())
