#!/usr/bin/env python3
"""Plot a resnet_ddp metrics log (layout in include/metrics.h) to a PNG: training loss
per step and per epoch (left), train and test accuracy per epoch (right)."""
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
          "epochs/epoch", "epochs/train_loss", "epochs/train_acc", "epochs/test_acc"]

def load(path):
    try:
        with h5py.File(path, "r") as f:
            for name in NEEDED:
                if not isinstance(f.get(name), h5py.Dataset):
                    sys.exit(f"plot_metrics: '{path}' is not a resnet_ddp metrics file: "
                             f"no dataset /{name}")
            return {name: f[name][:] for name in NEEDED}
    except OSError as e:
        sys.exit(f"plot_metrics: cannot read '{path}': {e}")

def parse_reference(text):
    label, _, numbers = text.rpartition(":")
    try:
        loss, train, test = (float(x) for x in numbers.split(","))
    except ValueError:
        sys.exit(f"plot_metrics: --reference '{text}': expected LABEL:LOSS,TRAIN_ACC,TEST_ACC, "
                 "e.g. 'd2l:0.019,0.994,0.915'")
    return label or "reference", loss, train, test

def main():
    ap = argparse.ArgumentParser(description="Plot a resnet_ddp metrics log to a PNG.")
    ap.add_argument("metrics", help="metrics .h5 file")
    ap.add_argument("-o", "--output", help="PNG to write (default: next to the .h5)")
    ap.add_argument("--reference", metavar="LABEL:LOSS,TRAIN_ACC,TEST_ACC", action="append",
                    default=[], help="a published end result to mark at the last epoch, "
                    "e.g. 'd2l run 1:0.019,0.994,0.915' (repeatable)")
    args = ap.parse_args()
    refs = [parse_reference(r) for r in args.reference]
    d = load(args.metrics)
    step, step_epoch, epoch = d["steps/step"], d["steps/epoch"], d["epochs/epoch"]
    # Global step e*S ends epoch e, so S (steps per epoch) follows from finished epochs.
    done = [e for e in epoch if (step_epoch == e).any()] or list(np.unique(step_epoch)[:1])
    per_epoch = np.median([step[step_epoch == e].max() / e for e in done]) if done else 1.0
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax_loss.plot(step / per_epoch, d["steps/loss"], lw=0.6, alpha=0.7, label="step loss")
    # An epoch's mean loss belongs to the middle of the epoch, not its end.
    ax_loss.plot(epoch - 0.5, d["epochs/train_loss"], "o", label="epoch mean train loss")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    ax_acc.plot(epoch, d["epochs/train_acc"], "o-", label="train")
    ax_acc.plot(epoch, d["epochs/test_acc"], "s-", label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy per epoch")
    last = epoch.max() if len(epoch) else 1
    for (label, loss, train, test), marker in zip(refs, "x+*^v"):
        ax_loss.plot([last - 0.5], [loss], marker, ms=9, mew=2, color="black",
                     label=f"{label}: final loss")
        ax_acc.plot([last, last], [train, test], marker, ms=9, mew=2, color="black",
                    label=f"{label}: final train / test")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(os.path.basename(args.metrics))
    out = args.output or os.path.splitext(args.metrics)[0] + ".png"
    fig.savefig(out, dpi=120, bbox_inches="tight")
    print(out)

if __name__ == "__main__":
    main()
