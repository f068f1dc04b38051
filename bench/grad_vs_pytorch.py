#!/usr/bin/env python3
"""One training step's gradient of resnet_ddp against PyTorch's, on the seed's model.

    /usr/bin/python3 bench/grad_vs_pytorch.py [--kernels auto,Prescott,Haswell]
                  [--threads 1,2] [--size 28] [--images 256] [--set train.winograd=false]

For each OpenBLAS kernel (OPENBLAS_CORETYPE; "auto" = the program's own choice) and
thread count, resnet_ddp takes one plain SGD step (lr 1, no momentum or weight decay)
on the first --images training images as one batch, starting from its own Xavier
initialization; the gradient is the difference of the weights before and after. The
weights before come from a run whose one step has lr 1e-30: it leaves every weight
as initialized (BN's running statistics move, which a training-mode forward does not
read). PyTorch then computes the gradient of the same loss from those weights in
float64 (the reference) and in float32 with 1 and 2 threads.

Each gradient is scored per tensor t as
    ||g_t - ref_t||_2 / (1e-3 ||ref_t||_2 + 1e-5 ||ref||_2)
(ref the whole float64 gradient), and the largest score over tensors is printed: at
most 1 means every tensor agrees to 0.1% of itself or 1e-5 of the whole gradient.
Convolution biases followed by batch-norm are left out: their true gradient is zero
(resnet_ddp computes none, docs/DESIGN.md "Numerics"), so any score there measures
rounding noise. The PyTorch float32 rows show how far float arithmetic alone moves
this gradient: at initialization the backward pass through batch-norm amplifies
rounding about a thousandfold in the first stages.
"""
import argparse, glob, gzip, os, subprocess, sys, tempfile

import h5py, numpy as np, torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from seed_resnet import make_net  # noqa: E402


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = np.frombuffer(data, ">u4", data[3], 4).astype(int)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(dims)


def model_of(path):
    with h5py.File(path, "r") as f:
        return {k: torch.from_numpy(np.array(d[()])) for k, d in f["model"].items()}


def step(tmp, name, lr, kernel, threads, args):
    """Checkpoint after one step of resnet_ddp with learning rate lr."""
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if kernel != "auto":
        env["OPENBLAS_CORETYPE"] = kernel
    ck = os.path.join(tmp, name)
    config = os.path.join(ROOT, "configs", "r18.ini" if args.size == 96 else "r18-28.ini")
    cmd = [args.bin, config, f"train.lr={lr}", "train.max_steps=1", f"train.threads={threads}",
           f"train.batch_size={args.images}", f"data.train_limit={args.images}", "data.test_limit=16",
           "train.progress=false", f"checkpoint.dir={ck}"] + args.set
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"grad_vs_pytorch: {' '.join(cmd)} failed:\n{out.stderr}")
    kernel_line = next((l for l in out.stdout.splitlines() if l.startswith("# BLAS:")), "# BLAS: ?")
    return glob.glob(os.path.join(ck, "ckpt-*.h5"))[0], kernel_line[len("# BLAS: "):]


def pytorch_grads(weights, x, y, dtype, threads):
    torch.set_num_threads(threads)
    net = make_net(int(weights["0.0.weight"].shape[0]), int(weights["7.weight"].shape[0]))
    net.load_state_dict(weights)
    net = net.to(dtype)
    net.train()
    loss = torch.nn.functional.cross_entropy(net(x.to(dtype)), y)
    loss.backward()
    return {k: p.grad.double() for k, p in net.named_parameters()}


def score(g, ref, skip):
    whole = sum(float((v ** 2).sum()) for v in ref.values()) ** 0.5
    worst, where = 0.0, "-"
    for k, r in ref.items():
        if k in skip:
            continue
        s = float((g[k] - r).norm()) / (1e-3 * float(r.norm()) + 1e-5 * whole)
        if s > worst:
            worst, where = s, k
    return worst, where


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernels", default="auto,Prescott,Haswell")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--size", type=int, default=28, choices=(28, 96))
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="a config override for resnet_ddp's runs (repeatable)")
    p.add_argument("--bin", default=os.environ.get("RESNET_DDP_BIN", os.path.join(ROOT, "build", "resnet_ddp")))
    p.add_argument("--data", default=os.environ.get("RESNET_DDP_DATA", "/usr/share/datasets/fashion-mnist"))
    args = p.parse_args()
    images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))[:args.images]
    if args.size != images.shape[1]:
        from PIL import Image
        images = np.stack([np.asarray(Image.fromarray(im).resize((args.size, args.size), Image.BILINEAR))
                           for im in images])
    x = torch.from_numpy(images.astype(np.float32) / np.float32(255)).unsqueeze(1)
    y = torch.from_numpy(read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))[:args.images].astype(np.int64))
    with tempfile.TemporaryDirectory() as tmp:
        before_path, _ = step(tmp, "before", "1e-30", "auto", 1, args)
        before = model_of(before_path)
        # Convolutions followed by batch-norm: every conv of a block but the shortcut
        # (conv3), and the stem's.
        skip = {k for k in before if k.endswith(".bias") and ("conv1" in k or "conv2" in k or k == "0.0.bias")}
        ref = pytorch_grads(before, x, y, torch.float64, 2)
        print(f"# {args.images} images at {args.size}x{args.size}; score: largest over tensors of "
              f"||g - ref|| / (1e-3 ||ref_t|| + 1e-5 ||ref||), ref = PyTorch float64")
        for t in (1, 2):
            s, where = score(pytorch_grads(before, x, y, torch.float32, t), ref, skip)
            print(f"pytorch float32, {t} thread(s): {s:.3f} ({where})")
        for kernel in args.kernels.split(","):
            for t in (int(v) for v in args.threads.split(",")):
                after_path, blas = step(tmp, f"after-{kernel}-{t}", "1", kernel, t, args)
                after = model_of(after_path)
                g = {k: before[k].double() - after[k].double() for k in ref}
                s, where = score(g, ref, skip)
                print(f"resnet_ddp {blas}, {t} thread(s): {s:.3f} ({where})")


if __name__ == "__main__":
    main()
