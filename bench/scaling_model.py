#!/usr/bin/env python3
"""Scaling model of resnet_ddp across nodes (docs/SCALING.md explains each term).

One step on N nodes of L ranks, each node training b images (global batch N*b):
  compute       t_c = b / R                  R = one node's img/s, measured
  backward      t_b = beta * t_c             beta = backward's share of compute, measured
  node sum      t_l                          the shared-memory slice sum, measured
  across nodes  t_x = 2(N-1)/N * S / B + 2(N-1) * alpha
                (ring allreduce of the slices: the L rings share the node's link)
  sync BN       t_bn = 2 * layers * 2 * ceil(log2(N*L)) * alpha
                (small allreduces, forward and backward, latency-bound)
Step time, cross-node sum after backward:  T = t_c + t_l + t_x + t_bn
Overlapped with backward (the default):    T = t_c + t_l + max(t_x - t_b, t_x / buckets) + t_bn
Scaling efficiency (weak scaling, as Goyal et al.): E(N) = T(1) / T(N), T(1) = t_c + t_l.

  python3 bench/scaling_model.py [--json measured.json]

Without --json the inputs are the figures docs/SCALING.md gives; every input can be
set with --set name=value (R28, R96, beta28, beta96, t_l, alpha, S, b, L, layers,
buckets). --check "N:Gbit:measured_seconds,..." prints t_l + t_x against measured
sum times (the namespace measurements); --check-exposed "N:Gbit:backward_s:measured,..."
prints the overlapped sum's exposed time t_l + max(t_x - t_b, t_x / buckets) against
the time measured after an emulated backward of backward_s."""
import argparse
import json
import math

DEFAULTS = {
    # Measured on a 2-core AMD EPYC (Zen 3) VM, OpenBLAS kernel Zen (docs/SCALING.md):
    "R28": 1149.8,     # img/s of one node, 2 ranks x 1 thread, 28x28 (bench/throughput.sh)
    "R96": 123.5,      # img/s of one node, 2 ranks x 1 thread, 96x96
    "beta28": 0.62,    # backward / (forward + backward), from the same runs
    "beta96": 0.62,
    "t_l": 0.004,      # s, shared-memory sum of 44.7 MB on 2 ranks (build/grad_sum)
    # Assumed:
    "alpha": 30e-6,    # s, one message's latency on a cluster's Ethernet
    "S": 44.7e6,       # bytes of float gradients
    "b": 128,          # images per node per step
    "L": 2,            # ranks per node
    "layers": 20,      # batch-norm layers (each reduces in forward and backward)
    "buckets": 4,      # overlapped buckets: the last cannot hide behind backward
}


def times(p, n, gbit, size, overlap):
    r, beta = p[f"R{size}"], p[f"beta{size}"]
    t_c = p["b"] / r
    t_b = beta * t_c
    bw = gbit * 1e9 / 8
    t_x = 0.0 if n == 1 else 2 * (n - 1) / n * p["S"] / bw + 2 * (n - 1) * p["alpha"]
    ranks = n * p["L"]
    t_bn = 2 * p["layers"] * 2 * math.ceil(math.log2(ranks)) * p["alpha"] if n > 1 else 0.0
    exposed = max(t_x - t_b, t_x / p["buckets"]) if overlap else t_x
    return t_c + p["t_l"] + exposed + t_bn, t_c, t_x, t_bn


def efficiency(p, n, gbit, size, overlap):
    one = p["b"] / p[f"R{size}"] + p["t_l"]
    return one / times(p, n, gbit, size, overlap)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="inputs measured elsewhere (same names as --set)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--check", help="N:Gbit:seconds,... measured hierarchical sums")
    ap.add_argument("--check-exposed", help="N:Gbit:backward_s:seconds,... measured after a backward")
    args = ap.parse_args()
    p = dict(DEFAULTS)
    if args.json:
        with open(args.json) as f:
            p.update(json.load(f))
    for kv in args.set:
        name, _, value = kv.partition("=")
        if name not in p:
            ap.error(f"--set {kv}: unknown input '{name}' (expected one of {', '.join(p)})")
        p[name] = float(value)
    print("inputs: " + ", ".join(f"{k}={v:g}" for k, v in p.items()))
    print()
    print("| image | link Gbit/s | nodes | global batch | t_c s | t_x s | t_bn s | E after backward | E overlapped |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in (28, 96):
        for gbit in (10, 25, 100):
            for n in (8, 32, 128):
                _, t_c, t_x, t_bn = times(p, n, gbit, size, False)
                print(f"| {size}x{size} | {gbit} | {n} | {int(n * p['b'])} | {t_c:.3f} | {t_x:.4f} | "
                      f"{t_bn:.4f} | {efficiency(p, n, gbit, size, False):.2f} | "
                      f"{efficiency(p, n, gbit, size, True):.2f} |")
    if args.check:
        print()
        print("| nodes | link Gbit/s | model t_l + t_x s | measured s | measured / model |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for item in args.check.split(","):
            n, gbit, measured = item.split(":")
            n, gbit, measured = int(n), float(gbit), float(measured)
            bw = gbit * 1e9 / 8
            model = p["t_l"] + 2 * (n - 1) / n * p["S"] / bw + 2 * (n - 1) * p["alpha"]
            print(f"| {n} | {gbit:g} | {model:.3f} | {measured:.3f} | {measured / model:.2f} |")
    if args.check_exposed:
        print()
        print("| nodes | link Gbit/s | backward s | model exposed s | measured s | measured / model |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for item in args.check_exposed.split(","):
            n, gbit, t_b, measured = item.split(":")
            n, gbit, t_b, measured = int(n), float(gbit), float(t_b), float(measured)
            t_x = 2 * (n - 1) / n * p["S"] / (gbit * 1e9 / 8) + 2 * (n - 1) * p["alpha"]
            model = p["t_l"] + max(t_x - t_b, t_x / p["buckets"])
            print(f"| {n} | {gbit:g} | {t_b:g} | {model:.3f} | {measured:.3f} | {measured / model:.2f} |")


if __name__ == "__main__":
    main()
