#!/usr/bin/env python3
"""The seed's ResNet-18 (d2l.ai, "Residual Networks") trained in PyTorch on the real
Fashion-MNIST, for side-by-side timing with resnet_ddp.

    /usr/bin/python3 bench/pytorch_resnet.py --size 28 --threads 2 --steps 20
    /usr/bin/python3 bench/pytorch_resnet.py --size 28 --ranks 2 --threads 1 --sync-bn

Same architecture, recipe (SGD lr 0.05, batch 256 global), data (the first images of
the training set, resized with PIL's bilinear filter as torchvision's Resize does, to
tensors in [0, 1]). --ranks N runs DistributedDataParallel over gloo on this machine;
--sync-bn replaces BatchNorm2d by a hand-written synchronized BN (PyTorch's
SyncBatchNorm refuses CPU tensors). Prints two lines: what PyTorch computes with here
("pytorch backends: ..." -- convolution library and the code oneDNN runs, BLAS and
OpenBLAS's kernel when it is OpenBLAS, ATen's vector instruction set), then the
median/min/max images/s per step after the warm-up steps, and the peak RSS of rank 0.
"""
import argparse, ctypes, gzip, os, re, resource, statistics, struct, sys, tempfile, time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from seed_resnet import make_net  # noqa: E402  (the seed's model, shared with the export tool)


def seed_net():
    net = make_net()
    for m in net.modules():  # d2l's train_ch6 initialization
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
    return net


class SyncBNFunction(torch.autograd.Function):
    """Batch-norm over the global batch: all-reduce (sum, sum of squares, count)
    forward and (sum dy, sum dy*xhat) backward, as resnet_ddp does."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        c = x.shape[1]
        stats = torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)),
                           torch.tensor([x.numel() / c], dtype=x.dtype)]).double()
        dist.all_reduce(stats)
        n = stats[-1]
        mean = stats[:c] / n
        var = stats[c:2 * c] / n - mean * mean
        invstd = torch.rsqrt(var + eps).float()
        mean = mean.float()
        xhat = (x - mean[None, :, None, None]) * invstd[None, :, None, None]
        ctx.save_for_backward(xhat, weight, invstd)
        ctx.n = float(n)
        return xhat * weight[None, :, None, None] + bias[None, :, None, None], mean, var.float() * n / (n - 1)

    @staticmethod
    def backward(ctx, dy, _dmean, _dvar):
        xhat, weight, invstd = ctx.saved_tensors
        c = dy.shape[1]
        local = torch.cat([dy.sum((0, 2, 3)), (dy * xhat).sum((0, 2, 3))])
        dbias, dweight = local[:c].clone(), local[c:].clone()
        sums = local.double()
        dist.all_reduce(sums)
        mean_dy = (sums[:c] / ctx.n).float()[None, :, None, None]
        mean_dy_xhat = (sums[c:] / ctx.n).float()[None, :, None, None]
        dx = (weight * invstd)[None, :, None, None] * (dy - mean_dy - xhat * mean_dy_xhat)
        return dx, dweight, dbias, None


class SyncBatchNorm2d(nn.BatchNorm2d):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        y, mean, unbiased_var = SyncBNFunction.apply(x, self.weight, self.bias, self.eps)
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased_var)
        return y


def to_sync_bn(module):
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            sync = SyncBatchNorm2d(child.num_features)
            sync.load_state_dict(child.state_dict())
            setattr(module, name, sync)
        else:
            to_sync_bn(child)
    return module


def load_images(data_dir, count, size):
    with gzip.open(os.path.join(data_dir, "train-images-idx3-ubyte.gz")) as f:
        _, n, rows, cols = struct.unpack(">IIII", f.read(16))
        images = np.frombuffer(f.read(count * rows * cols), dtype=np.uint8).reshape(count, rows, cols)
    with gzip.open(os.path.join(data_dir, "train-labels-idx1-ubyte.gz")) as f:
        f.read(8)
        labels = np.frombuffer(f.read(count), dtype=np.uint8)
    if size != rows:
        from PIL import Image
        images = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])
    # Kept as bytes (as resnet_ddp keeps them) and scaled per batch, so the images do not
    # inflate the peak RSS being compared.
    return torch.from_numpy(np.array(images)).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def onednn_report():
    """oneDNN's verbose lines for one small convolution (written to fd 1 by the library)."""
    with tempfile.TemporaryFile() as f:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(f.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                nn.functional.conv2d(torch.ones(2, 16, 28, 28), torch.ones(16, 16, 3, 3))
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        f.seek(0)
        return f.read().decode(errors="replace")


def openblas_report():
    """OpenBLAS's version, threading and kernel, if this process has loaded it."""
    for line in open("/proc/self/maps"):
        path = line.split()[-1]
        if os.path.basename(path).startswith("libopenblas"):
            lib = ctypes.CDLL(path)
            lib.openblas_get_config.restype = lib.openblas_get_corename.restype = ctypes.c_char_p
            version = lib.openblas_get_config().decode().split()[1]
            threading = {0: "sequential", 1: "pthreads", 2: "OpenMP"}.get(lib.openblas_get_parallel(), "?")
            return f"OpenBLAS {version} ({threading}) kernel {lib.openblas_get_corename().decode()}"
    return None


def backends():
    """One line: what this PyTorch computes with here."""
    show = torch.__config__.show()
    def found(pattern):
        m = re.search(pattern, show)
        return m.group(1) if m else "?"
    if torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled:
        report = onednn_report()
        impl = re.search(r",convolution,([^,]+),", report)
        isa = re.search(r",isa:(.*)", report)
        conv = (f"oneDNN {found(r'MKL-DNN v([0-9.]+)')} {impl.group(1) if impl else '?'} "
                f"(isa {isa.group(1).strip() if isa else '?'})")
    else:
        conv = "ATen's own (oneDNN off)"
    blas = openblas_report() or found(r"BLAS_INFO=(\w+)")
    capability = found(r"CPU capability usage: (\S+)")
    return f"convolutions {conv}; BLAS {blas}; ATen CPU capability {capability}"


def run(rank, args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if rank == 0:
        print(f"pytorch backends: {backends()}", flush=True)
    if args.ranks > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank,
                                world_size=args.ranks)
    per_rank = args.batch // args.ranks
    steps = args.warmup + args.steps
    x_all, y_all = load_images(args.data, args.batch * steps, args.size)
    net = seed_net()
    if args.sync_bn:
        net = to_sync_bn(net)
    if args.ranks > 1:
        net = nn.parallel.DistributedDataParallel(net, bucket_cap_mb=25)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    rates = []
    for s in range(steps):
        lo = s * args.batch + rank * per_rank
        t0 = time.perf_counter()
        x, y = x_all[lo:lo + per_rank].float().div_(255.0), y_all[lo:lo + per_rank]
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        if args.ranks > 1:
            dist.barrier()
        if s >= args.warmup:
            rates.append(args.batch / (time.perf_counter() - t0))
    if rank == 0:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1048576.0
        print(f"pytorch {torch.__version__} size {args.size} ranks {args.ranks} threads {args.threads}"
              f"{' sync-bn' if args.sync_bn else ''}: median {statistics.median(rates):.1f} "
              f"min {min(rates):.1f} max {max(rates):.1f} img/s over {len(rates)} steps; "
              f"peak RSS {rss:.2f} GiB", flush=True)
    if args.ranks > 1:
        dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--sync-bn", action="store_true")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--port", type=int, default=29517)
    p.add_argument("--data", default=os.environ.get("RESNET_DDP_DATA", "/usr/share/datasets/fashion-mnist"))
    args = p.parse_args()
    if args.ranks > 1:
        mp.spawn(run, args=(args,), nprocs=args.ranks)
    else:
        run(0, args)


if __name__ == "__main__":
    main()
