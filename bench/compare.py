#!/usr/bin/env python3
"""Side-by-side training throughput and memory: resnet_ddp against the seed's
ResNet-18 in PyTorch (bench/pytorch_resnet.py), same batch, threads and real data.

    /usr/bin/python3 bench/compare.py [--runs 5] [--modes single28,single96,ddp28]
                                      [--env asis,unset]

Every mode runs the two programs in alternation (A B A B ...), --runs times each; a
run trains --warmup + --steps steps and reports the median img/s of the steps after
the warm-up. The table gives, per program, the median / min / max of those per-run
medians, the ratio of medians to PyTorch, the peak RSS (largest over the runs; for a
2-rank run, of the largest rank), GFLOP/s at the nominal cost of one training image
(198 MFLOP at 28x28, 1,910 MFLOP at 96x96, counting im2col's multiplications by
padding, the same for both programs) and that as a fraction of this machine's FMA
peak (build/fma_peak: single-precision FMA throughput of 2 threads, measured at the
start, since a VM can give far less than its CPU's data sheet) and of what
OpenBLAS's sgemm reaches on this machine in the same environment (2048^3, 2 threads,
best of 5, with the kernel resnet_ddp would choose: build/sgemm_peak, run before each
environment's runs).

The kernels each program ran are printed once per environment and program, and
named in the table's kernel column: resnet_ddp's from its "# BLAS:" start-up line,
PyTorch's from the "pytorch backends:" line of bench/pytorch_resnet.py (oneDNN's
convolution code, and OpenBLAS's kernel when PyTorch's BLAS is OpenBLAS).

Environment variants (--env):
  asis   the environment as given, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE included if
         it sets them;
  unset  both variables removed for the command, so the kernel is chosen for the CPU
         (by OpenBLAS, and for resnet_ddp also by its blas_kernel.c);
  haswell  OPENBLAS_CORETYPE=Haswell only: OpenBLAS's AVX2 kernels whatever the CPU
         (resnet_ddp stops with an error on a CPU without AVX2 and FMA).
Modes: single28 / single96 = one process x 2 threads (96 adds PyTorch with glibc's
malloc tuned, TUNED_MALLOC, unless --no-pytorch-tuned); ddp28 / ddp96 = 2 ranks x 1
thread, synchronized BN.

Results, with their machine and commit: docs/PERFORMANCE.md and bench/results/.
"""
import argparse, os, re, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MFLOP = {28: 198.0, 96: 1910.0}           # nominal per training image, im2col's count
TUNED_MALLOC = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"


def env_variant(name):
    env = dict(os.environ)
    if name == "unset":
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    elif name == "haswell":
        env["OPENBLAS_CORETYPE"] = "Haswell"
    elif name != "asis":
        sys.exit(f"compare.py: --env {name}: expected asis, unset or haswell")
    return env


def describe_env(env):
    return ", ".join(f"{k}={env[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in env) \
        or "neither OPENBLAS_CORETYPE nor OPENBLAS_L2_SIZE set"


def run(cmd, env, log):
    """Runs cmd; returns (stdout text, peak RSS in GiB of it and its waited children)."""
    with open(log, "w+") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if p.returncode != 0:
        sys.exit(f"compare.py: command failed ({p.returncode}): {' '.join(cmd)}\n{text[-3000:]}")
    return text, usage.ru_maxrss / 1048576.0


def kernel_report(text):
    """(whole line, short name) of the kernels a run reports: resnet_ddp's "# BLAS:"
    line or pytorch_resnet.py's "pytorch backends:" line."""
    m = re.search(r"^(?:# BLAS|pytorch backends): (.*)$", text, re.M)
    if not m:
        return "not reported", "?"
    conv = re.search(r"oneDNN \S+ (\S+)", m.group(1))
    blas = re.search(r"kernel (\w+)", m.group(1))
    short = ([f"oneDNN {conv.group(1)}"] if conv else []) + ([f"OpenBLAS {blas.group(1)}"] if blas else [])
    return m.group(1), " + ".join(short) or "?"


def ours(mode, size, ranks, threads, args, tmp):
    binary = os.environ.get("RESNET_DDP_BIN", os.path.join(ROOT, "build", "resnet_ddp"))
    config = os.path.join(ROOT, "configs", "r18.ini" if size == 96 else "r18-28.ini")
    cmd = [binary, config, f"train.threads={threads}", f"train.max_steps={args.warmup + args.steps}",
           "train.batch_size=256", "data.test_limit=256", "train.progress=false",
           f"checkpoint.dir={tmp}/ck", f"metrics.path={tmp}/metrics.h5", "checkpoint.every_epochs=0",
           "checkpoint.resume=none"]
    if ranks > 1:
        cmd = ["mpirun", "--oversubscribe", "--bind-to", "core", "-np", str(ranks)] + cmd
        if os.geteuid() == 0:
            cmd[1:1] = ["--allow-run-as-root"]
    def parse(text):
        m = re.search(r"^# throughput: median ([0-9.]+) img/s", text, re.M)
        if not m:
            sys.exit("compare.py: no throughput line from resnet_ddp:\n" + text[-2000:])
        return float(m.group(1))
    return cmd, parse


def pytorch(mode, size, ranks, threads, args, run_index):
    cmd = ["/usr/bin/python3", os.path.join(ROOT, "bench", "pytorch_resnet.py"), "--size", str(size),
           "--threads", str(threads), "--ranks", str(ranks), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--port", str(29500 + run_index % 400)]
    if ranks > 1:
        cmd.append("--sync-bn")
    def parse(text):
        m = re.search(r"median ([0-9.]+) min", text)
        if not m:
            sys.exit("compare.py: no result line from pytorch_resnet.py:\n" + text[-2000:])
        return float(m.group(1))
    return cmd, parse


MODES = {  # name: (image size, ranks, threads per rank)
    "single28": (28, 1, 2), "single96": (96, 1, 2), "ddp28": (28, 2, 1), "ddp96": (96, 2, 1),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--steps", type=int, default=0, help="measured steps per run (default 20 at 28x28, 8 at 96x96)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--modes", default="single28,single96,ddp28")
    p.add_argument("--env", default="asis,unset")
    p.add_argument("--no-pytorch-tuned", action="store_true", help="skip the tuned-malloc PyTorch runs at 96x96")
    args = p.parse_args()
    if args.runs < 1:
        sys.exit("compare.py: --runs: expected at least 1")
    for m in args.modes.split(","):
        if m not in MODES:
            sys.exit(f"compare.py: --modes {m}: expected some of {', '.join(MODES)}")
    if os.environ.get("OMPI_COMM_WORLD_SIZE"):
        sys.exit("compare.py: run it directly, not under mpirun")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {cpu}, {os.cpu_count()} CPUs; "
          f"{args.runs} runs of each program, alternating; {args.warmup} warm-up steps excluded")
    rows = []
    run_index = 0
    bin_dir = os.path.dirname(os.environ.get("RESNET_DDP_BIN", os.path.join(ROOT, "build", "resnet_ddp")))
    with tempfile.TemporaryDirectory() as tmp:
        fma = run([os.path.join(bin_dir, "fma_peak"), "2"], os.environ, os.path.join(tmp, "log"))[0].split()
        peak = float(fma[0])
        print(f"# FMA peak of this machine, 2 threads: {peak:.0f} GFLOP/s "
              f"(256-bit {float(fma[1]):.0f}, 512-bit {float(fma[2]):.0f})", flush=True)
        for variant in args.env.split(","):
            env = env_variant(variant)
            sgemm, core = run([os.path.join(bin_dir, "sgemm_peak"), "2"], env, os.path.join(tmp, "log"))[0].split()
            sgemm = float(sgemm)
            print(f"# env {variant}: {describe_env(env)}; OpenBLAS core {core}, sgemm 2048^3 x 2 threads "
                  f"{sgemm:.0f} GFLOP/s", flush=True)
            for mode in args.modes.split(","):
                size, ranks, threads = MODES[mode]
                a = argparse.Namespace(**vars(args))
                a.steps = args.steps or (20 if size == 28 else 8)
                programs = [("resnet_ddp", *ours(mode, size, ranks, threads, a, tmp), env)]
                py_env = dict(env)
                programs.append(("pytorch", None, None, py_env))
                if size == 96 and ranks == 1 and not args.no_pytorch_tuned:
                    tuned = dict(env, GLIBC_TUNABLES=TUNED_MALLOC)
                    programs.append(("pytorch tuned malloc", None, None, tuned))
                results = {name: ([], [], set()) for name, *_ in programs}
                for r in range(args.runs):
                    for name, cmd, parse, penv in programs:
                        run_index += 1
                        if cmd is None:
                            c, pr = pytorch(mode, size, ranks, threads, a, run_index)
                        else:
                            shutil.rmtree(os.path.join(tmp, "ck"), ignore_errors=True)
                            c, pr = cmd, parse
                        text, rss = run(c, penv, os.path.join(tmp, "log"))
                        rate = pr(text)
                        results[name][0].append(rate)
                        results[name][1].append(rss)
                        line, kernel = kernel_report(text)
                        if not results[name][2]:
                            print(f"#   {variant} {mode} {name} kernels: {line}", flush=True)
                        results[name][2].add(kernel)
                        print(f"#   {variant} {mode} run {r + 1} {name}: {rate:.1f} img/s, peak RSS {rss:.2f} GiB",
                              flush=True)
                ref = statistics.median(results["pytorch"][0])
                for name, (rates, rss, kernels) in results.items():
                    med = statistics.median(rates)
                    gflops = med * MFLOP[size] / 1000.0
                    rows.append((variant, mode, f"{ranks}x{threads}", name, " / ".join(sorted(kernels)),
                                 med, min(rates), max(rates), med / ref, max(rss), gflops, gflops / peak,
                                 gflops / sgemm))
    print()
    print("| env | mode | ranks x threads | program | kernel | img/s median | min | max | vs PyTorch "
          "| peak RSS GiB | GFLOP/s | of FMA peak | of sgemm |")
    print("| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for v, mode, rt, name, kernel, med, lo, hi, ratio, rss, gf, frac, of_sgemm in rows:
        print(f"| {v} | {mode} | {rt} | {name} | {kernel} | {med:.1f} | {lo:.1f} | {hi:.1f} | {ratio:.2f}x "
              f"| {rss:.2f} | {gf:.0f} | {frac:.0%} | {of_sgemm:.0%} |")


if __name__ == "__main__":
    main()
