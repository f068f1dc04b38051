#!/usr/bin/env python3
"""Load a resnet_ddp checkpoint into the seed's d2l.ai ResNet-18 (PyTorch).

    python3 tools/export_pytorch.py CHECKPOINT.h5 [--ema] [--eval] [--data DIR]

/model holds the state_dict under PyTorch's own keys and shapes, so loading is one
load_state_dict(strict=True); --ema loads the weight average (/ema, [train]
ema_decay) instead; --eval prints the Fashion-MNIST test accuracy. Needs
h5py, torch, numpy (Debian python3-h5py, python3-torch); Pillow for resized inputs.
"""
import argparse, gzip, os, sys
import h5py, numpy as np, torch

from seed_resnet import make_net  # the seed's model, next to this script


def load(path, ema=False):
    """(net, root attributes, number of tensors) of a checkpoint: its model, or with ema
    its weight average (whose group has no num_batches_tracked: the model's is kept)."""
    with h5py.File(path, "r") as f:
        # Strings are fixed-length, which h5py returns as bytes.
        attrs = {k: v.decode() if isinstance(v, bytes) else v.item() for k, v in f.attrs.items()}
        sd = {k: torch.from_numpy(np.array(d[()])) for k, d in f["model"].items()}
        if ema:
            if "ema" not in f:
                sys.exit(f"{path}: no weight average (/ema): train with [train] ema_decay > 0")
            sd.update({k: torch.from_numpy(np.array(d[()])) for k, d in f["ema"].items()})
    if attrs["depth"] != 18:
        sys.exit(f"{path}: ResNet-{attrs['depth']}; the seed's model is ResNet-18")
    net = make_net(attrs["width"], attrs["num_classes"], attrs.get("stem", "d2l"))
    net.load_state_dict(sd, strict=True)
    return net, attrs, len(sd)

def read_idx(path):  # IDX: big-endian, byte 3 of the magic = number of dimensions
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = np.frombuffer(data, ">u4", data[3], 4).astype(int)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(dims)

def evaluate(net, size, data_dir):
    images = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"))
    labels = torch.from_numpy(read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    if size != images.shape[1]:  # torchvision's Resize(size) on PIL images, as d2l does
        from PIL import Image
        images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])
    x = torch.from_numpy(images.astype(np.float32) / np.float32(255)).unsqueeze(1)  # ToTensor
    net.eval()
    with torch.no_grad():
        correct = sum((net(x[i:i + 256]).argmax(1) == labels[i:i + 256]).sum().item() for i in range(0, len(x), 256))
    return correct / len(x)

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--ema", action="store_true", help="the weight average instead of the model")
    ap.add_argument("--eval", action="store_true", help="test-set accuracy")
    ap.add_argument("--data", default=os.environ.get("RESNET_DDP_DATA", "/usr/share/datasets/fashion-mnist"))
    args = ap.parse_args()
    net, attrs, n = load(args.checkpoint, args.ema)
    for key in sorted(attrs):
        print(f"{key}: {attrs[key]}" if key != "config" else "config:\n  " + attrs[key].replace("\n", "\n  "))
    print(f"loaded {n} tensors")
    if args.eval:
        print(f"test accuracy: {evaluate(net, attrs['image_size'], args.data):.4f}")
