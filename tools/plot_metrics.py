#!/usr/bin/env python3
"""Plot resnet_ddp metrics logs (layout in include/metrics.h) to a PNG: training loss
per step and per epoch (left), train and test accuracy per epoch (right), with the
flip test-time augmentation and the weight average's accuracies where the log has
them. Several logs (e.g. seeds) are drawn together; --minutes puts wall time on the
accuracy plot's x axis instead of epochs."""
import argparse
import os
import sys

# A running job keeps its log open for writing; without this HDF5 refuses to open it.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
os.environ["MPLBACKEND"] = "Agg"  # files only, no display needed
try:
    import h5py
    import matplotlib.pyplot as plt
    import numpy as np
except ImportError as e:
    sys.exit(f"plot_metrics: {e} (needs Debian's python3-h5py and python3-matplotlib)")

NEEDED = ["steps/step", "steps/epoch", "steps/loss",
          "epochs/epoch", "epochs/train_loss", "epochs/train_acc", "epochs/test_acc",
          "epochs/seconds"]
OPTIONAL = {"epochs/test_acc_flip": "test, flip TTA", "epochs/ema_test_acc": "test, average",
            "epochs/ema_test_acc_flip": "test, average + flip TTA"}

def load(path):
    try:
        with h5py.File(path, "r") as f:
            for name in NEEDED:
                if not isinstance(f.get(name), h5py.Dataset):
                    sys.exit(f"plot_metrics: '{path}' is not a resnet_ddp metrics file: "
                             f"no dataset /{name}")
            d = {name: f[name][:] for name in NEEDED}
            d.update({name: f[name][:] for name in OPTIONAL if isinstance(f.get(name), h5py.Dataset)})
            return d
    except OSError as e:
        sys.exit(f"plot_metrics: cannot read '{path}': {e}")

def evaluated(x, y):
    """The points of an accuracy column that were evaluated (NaN between evaluations)."""
    keep = ~np.isnan(y)
    return x[keep], y[keep]

def parse_reference(text):
    label, _, numbers = text.rpartition(":")
    try:
        loss, train, test = (float(x) for x in numbers.split(","))
    except ValueError:
        sys.exit(f"plot_metrics: --reference '{text}': expected LABEL:LOSS,TRAIN_ACC,TEST_ACC, "
                 "e.g. 'd2l:0.019,0.994,0.915'")
    return label or "reference", loss, train, test

def plot_log(path, d, ax_loss, ax_acc, minutes, tag):
    step, step_epoch, epoch = d["steps/step"], d["steps/epoch"], d["epochs/epoch"]
    # Global step e*S ends epoch e, so S (steps per epoch) follows from finished epochs.
    done = [e for e in epoch if (step_epoch == e).any()] or list(np.unique(step_epoch)[:1])
    per_epoch = np.median([step[step_epoch == e].max() / e for e in done]) if done else 1.0
    ax_loss.plot(step / per_epoch, d["steps/loss"], lw=0.6, alpha=0.7, label=f"{tag}step loss")
    # An epoch's mean loss belongs to the middle of the epoch, not its end.
    ax_loss.plot(epoch - 0.5, d["epochs/train_loss"], "o", label=f"{tag}epoch mean train loss")
    x = np.cumsum(d["epochs/seconds"]) / 60.0 if minutes else epoch.astype(float)
    ax_acc.plot(x, d["epochs/train_acc"], "o-", label=f"{tag}train")
    ax_acc.plot(*evaluated(x, d["epochs/test_acc"]), "s-", label=f"{tag}test")
    for name, label in OPTIONAL.items():
        if name in d and not np.isnan(d[name]).all():
            ax_acc.plot(*evaluated(x, d[name]), "^--", label=f"{tag}{label}")
    return epoch.max() if len(epoch) else 1

def main():
    ap = argparse.ArgumentParser(description="Plot resnet_ddp metrics logs to a PNG.")
    ap.add_argument("metrics", nargs="+", help="metrics .h5 file(s)")
    ap.add_argument("-o", "--output", help="PNG to write (default: next to the first .h5)")
    ap.add_argument("--minutes", action="store_true", help="accuracy against wall-clock minutes")
    ap.add_argument("--title", help="the figure's title (default: the files' names)")
    ap.add_argument("--ylim", type=float, nargs=2, metavar=("LOW", "HIGH"),
                    help="the accuracy axis' range (e.g. 0.85 1.0)")
    ap.add_argument("--reference", metavar="LABEL:LOSS,TRAIN_ACC,TEST_ACC", action="append",
                    default=[], help="a published end result to mark at the last epoch, "
                    "e.g. 'd2l run 1:0.019,0.994,0.915' (repeatable)")
    args = ap.parse_args()
    refs = [parse_reference(r) for r in args.reference]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    last = 1
    for path in args.metrics:
        tag = os.path.basename(os.path.dirname(os.path.abspath(path))) + ": " if len(args.metrics) > 1 else ""
        last = max(last, plot_log(path, load(path), ax_loss, ax_acc, args.minutes, tag))
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    ax_acc.set(xlabel="minutes" if args.minutes else "epoch", ylabel="accuracy",
               title="Accuracy against time" if args.minutes else "Accuracy per epoch")
    if args.ylim:
        ax_acc.set_ylim(*args.ylim)
    for (label, loss, train, test), marker in zip(refs, "x+*^v"):
        ax_loss.plot([last - 0.5], [loss], marker, ms=9, mew=2, color="black",
                     label=f"{label}: final loss")
        ax_acc.axhline(test, color="black", lw=0.8, ls=":")
        ax_acc.text(ax_acc.get_xlim()[0], test, f" {label}: {test:.3f}", va="bottom", fontsize=8)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(args.title or ", ".join(os.path.basename(p) for p in args.metrics[:3]))
    out = args.output or os.path.splitext(args.metrics[0])[0] + ".png"
    fig.savefig(out, dpi=120, bbox_inches="tight")
    print(out)

if __name__ == "__main__":
    main()
