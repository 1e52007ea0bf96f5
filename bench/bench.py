"""Side-by-side timings for bench/run.sh (stdlib only).

Each pair alternates baseline and ledger runs so that load changes on the
machine hit both sides alike; medians of wall time and the highest peak RSS
(ru_maxrss of the process tree's largest process) are reported.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

LEDGER = sys.argv[1]
WANT = set(sys.argv[2:]) or {"big", "fixed"}
GIB = 1 << 30


TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


def timed(argv, cwd, env, stdout=subprocess.DEVNULL):
    """Wall seconds and peak RSS (KiB, from GNU time; 0 when absent).

    Dirty pages are flushed first (outside the timing), so that one side's
    writeback never lands in the other side's measurement."""
    os.sync()
    rss_file = os.path.join(cwd, "..", "rss.txt")
    wrapped = [TIME, "-f", "%M", "-o", rss_file, *argv] if TIME else argv
    start = time.perf_counter()
    code = subprocess.call(wrapped, cwd=cwd, env=env, stdout=stdout, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"{argv} exited {code}")
    rss = int(open(rss_file).read().split()[-1]) if TIME else 0
    return wall, rss


def setup(root):
    repo = os.path.join(root, "repo")
    os.makedirs(repo)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": root,
        "USER": "bench",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    run = lambda *a: subprocess.run(a, cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
    run("git", "init", "-q", "-b", "main")
    run("git", "commit", "-q", "--allow-empty", "-m", "initial")
    key = os.path.join(root, "key")
    run(LEDGER, "keygen", "--out", key)
    env["LEDGER_KEY"] = key
    run(LEDGER, "init")
    cfg = os.path.join(repo, "ledger.yaml")
    text = open(cfg).read().replace("min_cores: 8", "min_cores: 1").replace("min_memory_gb: 60", "min_memory_gb: 1")
    open(cfg, "w").write(text)
    return repo, env


def report(name, base, ours, base_rss, our_rss, target):
    b, o = statistics.median(base), statistics.median(ours)
    print(f"{name}")
    print(f"  baseline  median {b*1000:9.1f} ms  (min {min(base)*1000:.1f})  peak RSS {base_rss/1024:6.1f} MiB")
    print(f"  ledger    median {o*1000:9.1f} ms  (min {min(ours)*1000:.1f})  peak RSS {our_rss/1024:6.1f} MiB")
    print(f"  ratio     {o/b:.2f}x (median/median)   target {target}")


def bench_big(repo, env, runs):
    out = os.path.join(repo, "..", "baseline.out")
    cmd = "head -c 1073741824 /dev/zero"
    base, ours, base_rss, our_rss = [], [], 0, 0
    for i in range(runs):
        w, r = timed(["sh", "-c", f"{cmd} > {out}"], repo, env)
        base.append(w); base_rss = max(base_rss, r)
        os.remove(out)
        w, r = timed([LEDGER, "run", "--workflow", "bench", "--tag", f"big{i}", "--owner", "bench", "--", "sh", "-c", cmd], repo, env)
        ours.append(w); our_rss = max(our_rss, r)
        shutil.rmtree(os.path.join(repo, "audit"))
    report(f"1 GiB of output, {runs} runs each (ledger's stdout to /dev/null; log to disk)",
           base, ours, base_rss, our_rss, "<= 1.25x (goal 1.10x), ledger RSS <= 32 MiB")


def bench_fixed(repo, env, runs):
    base, ours, base_rss, our_rss = [], [], 0, 0
    for i in range(runs):
        w, r = timed(["git", "commit", "-q", "--allow-empty", "-m", f"bench {i}"], repo, env)
        base.append(w); base_rss = max(base_rss, r)
        w, r = timed([LEDGER, "run", "--workflow", "bench", "--tag", f"fixed{i}", "--owner", "bench", "--", "true"], repo, env)
        ours.append(w); our_rss = max(our_rss, r)
    report(f"fixed cost, {runs} runs each: `ledger run -- true` vs `git commit --allow-empty`",
           base, ours, base_rss, our_rss, "<= 3x (issue 7)")


def main():
    root = tempfile.mkdtemp(prefix="ledger-bench-", dir=os.environ.get("BENCH_DIR"))
    try:
        runs = int(os.environ.get("RUNS", "5"))
        print(f"machine: {os.cpu_count()} cores, {os.uname().release}; ledger {LEDGER}")
        if "big" in WANT:
            repo, env = setup(os.path.join(root, "big"))
            bench_big(repo, env, runs)
        if "fixed" in WANT:
            repo, env = setup(os.path.join(root, "fixed"))
            bench_fixed(repo, env, runs * 4)
    finally:
        shutil.rmtree(root, ignore_errors=True)


main()
