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
WANT = set(sys.argv[2:]) or {"big", "fixed", "dq", "finalize", "pull", "verify", "log"}
FLOOR = os.path.join(os.path.dirname(LEDGER), "examples", "ed25519_floor")
SHA_FLOOR = os.path.join(os.path.dirname(LEDGER), "examples", "sha256_floor")
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


def hermetic_env(root, **extra):
    """A clean environment: no user git config, a fixed identity."""
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
    env.update(extra)
    return env


def generated(root):
    """`ledger generate` of FINALIZE_RUNS (default 10000) runs under root/gen:
    (run count, repository, environment signing with writer0's key)."""
    n = int(os.environ.get("FINALIZE_RUNS", "10000"))
    gen = os.path.join(root, "gen")
    subprocess.run([LEDGER, "generate", gen, "--runs", str(n), "--writers", "3"], check=True, stdout=subprocess.DEVNULL)
    env = hermetic_env(root, LEDGER_KEY=os.path.join(gen, "keys", "writer0"))
    return n, gen, env


def setup(root):
    repo = os.path.join(root, "repo")
    os.makedirs(repo)
    env = hermetic_env(root)
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


DQ_RULES = """dq:
  columns: {date: date, factor: string, ret: float, vol: float, beta: float, sector: string, n: int, flag: int}
  not_null: [date, factor, ret]
  date: {column: date, sorted: true, max_gap_days: 5}
  ranges: {ret: {min: -1.0, max: 1.0}, vol: {min: 0.0, max: 10.0}}
  min_rows: 1000
  max_null_fraction: 0.01
"""


def make_csv(path, size):
    """About `size` bytes of 8-column rows, dates ascending, deterministic."""
    import datetime
    day = datetime.date(2000, 1, 3)
    with open(path, "w") as f:
        f.write("date,factor,ret,vol,beta,sector,n,flag\n")
        written, i = 0, 0
        while written < size:
            d = day.isoformat()
            chunk = "".join(
                f"{d},factor_{k:03d},{((i * 7919 + k) % 2000 - 1000) / 1001:.6f},{(k % 97) / 10:.4f},{(k % 13) / 7:.5f},sector_{k % 11},{i * 512 + k},{k & 1}\n"
                for k in range(512)
            )
            f.write(chunk)
            written += len(chunk)
            i += 1
            if i % 3 == 0:
                day += datetime.timedelta(days=1)


def bench_dq(repo, env, runs):
    cfg = os.path.join(repo, "ledger.yaml")
    text = open(cfg).read()
    start, end = text.index("\ndq:\n") + 1, text.index("\nproducts:\n") + 1
    open(cfg, "w").write(text[:start] + DQ_RULES + "\n" + text[end:])
    csv = os.path.join(repo, "in.csv")
    make_csv(csv, GIB)
    size = os.path.getsize(csv)
    base, ours, hashed, arithmetic, base_rss, our_rss = [], [], [], [], 0, 0
    for _ in range(runs):
        w, r = timed(["wc", "-l", csv], repo, env)
        base.append(w); base_rss = max(base_rss, r)
        w, r = timed([LEDGER, "dq", "--input", csv], repo, env)
        ours.append(w); our_rss = max(our_rss, r)
        w, _ = timed([SHA_FLOOR, csv], repo, env)
        hashed.append(w)
        w, _ = timed([SHA_FLOOR, "--in-cache", csv], repo, env)
        arithmetic.append(w)
    report(f"DQ gate on a {size / GIB:.2f} GiB CSV of 8 columns (8 typed columns, not-null, sorted dates, gaps, ranges, null fraction), {runs} runs each, file in page cache",
           base, ours, base_rss, our_rss, "<= 5x `wc -l`, RSS <= 64 MiB (no unique key configured)")
    report("for scale: the SHA-256 of the same file alone, no parsing (examples/sha256_floor) vs `wc -l`",
           base, hashed, base_rss, 0, "(information: the sequential part of the gate)")
    report("for scale: SHA-256 of as many bytes from one 128 KiB buffer, no reading (sha256_floor --in-cache) vs `wc -l`",
           base, arithmetic, base_rss, 0, "(information: the hash's arithmetic, which no gate recording the digest beats)")


def bench_finalize(root, runs):
    """A generated ledger of N runs (FINALIZE_RUNS, default 10000), packed:
    full finalize (no documents on disk) and finalize after one new run, each
    against reading every object once with git cat-file."""
    n, repo, env = generated(root)
    subprocess.run(["git", "repack", "-adq"], cwd=repo, env=env, check=True)
    # The repack deleted the generator's loose objects (about 100,000
    # files). On ext4 without a journal (this machine's disk) the inode
    # allocator skips, one by one, inodes freed less than 60 s ago (360 s
    # while their inode table block is unwritten), so every file finalize
    # creates in that window costs several times as much: the pair would
    # time the bench's own deletions. Written out and aged, they cost
    # nothing (docs/PERFORMANCE.md, "Full finalize and the disk").
    os.sync()
    time.sleep(float(os.environ.get("SETTLE_SECONDS", "65")))
    # The documents are moved aside, not deleted, until the end: on ext4
    # without a journal (this machine's disk) the inode allocator passes over
    # inodes freed in the last minutes one by one, so creating 58,000 files
    # right after deleting as many took 5 to 10 times as long, and longer
    # with every round (docs/PERFORMANCE.md, "Full finalize and the disk").
    aside = os.path.join(root, "aside")
    def clear(i):
        dest = os.path.join(aside, str(i))
        os.makedirs(dest)
        for d in ("docs", "audit"):
            if os.path.exists(os.path.join(repo, d)):
                os.rename(os.path.join(repo, d), os.path.join(dest, d))
        for dirpath, _, files in os.walk(os.path.join(repo, "gate_results")):
            for f in files:
                if f.endswith(".md"):
                    rel = os.path.relpath(os.path.join(dirpath, f), repo)
                    os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
                    os.rename(os.path.join(repo, rel), os.path.join(dest, rel))
    floor = ["sh", "-c", "git cat-file --batch-all-objects --batch > /dev/null"]
    base, full, inc, full_rss, inc_rss, base_rss, copy = [], [], [], 0, 0, 0, []
    cold, cold_rss = [], 0
    for i in range(runs):
        w, r = timed(floor, repo, env)
        base.append(w); base_rss = max(base_rss, r)
        # With no cache either: every signature verified, every run read.
        clear(f"{i}-no-cache")
        w, r = timed([LEDGER, "finalize", "--no-cache"], repo, env)
        cold.append(w); cold_rss = max(cold_rss, r)
        clear(i)
        w, r = timed([LEDGER, "finalize"], repo, env)
        full.append(w); full_rss = max(full_rss, r)
        # What creating the same files costs by itself on this disk (into
        # a directory of its own each round, kept: see above).
        copy_dir = os.path.join(aside, f"copy{i}")
        os.makedirs(copy_dir)
        w, _ = timed(["cp", "-r", "audit", "docs", "gate_results", copy_dir], repo, env)
        copy.append(w)
        subprocess.run([LEDGER, "run", "--workflow", "bench", "--tag", f"new{i}", "--owner", "bench", "--", "true"],
                       cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        w, r = timed([LEDGER, "finalize"], repo, env)
        inc.append(w); inc_rss = max(inc_rss, r)
    report(f"finalize over {n} generated runs (packed), {runs} runs each: full (no documents on disk) vs `git cat-file --batch-all-objects --batch`",
           base, full, base_rss, full_rss, "<= 3x")
    report(f"the same with --no-cache (every signature verified again, every run read) vs cat-file",
           base, cold, base_rss, cold_rss, "(the cache's share of the row above)")
    report(f"finalize after one new run vs full finalize (same {n}-run ledger)",
           full, inc, full_rss, inc_rss, "<= 0.20x")
    files = sum(len(f) for d in ("audit", "docs", "gate_results") for _, _, f in os.walk(os.path.join(repo, d)))
    report(f"for scale: `cp -r` of the work tree's audit/, docs/ and gate_results/ ({files} files) vs cat-file",
           base, copy, base_rss, 0, "(information: the file-creation floor of a full finalize)")


def bench_verify(root, runs):
    """`ledger verify` of a generated ledger of N runs (FINALIZE_RUNS, default
    10000), packed, against verify_strict of as many ed25519 signatures on
    every core (examples/ed25519_floor, timed inside the process: the
    signature work alone). Then `ledger log` and `ledger status` of the same
    ledger against `git log --oneline` of the ledger ref."""
    n, repo, env = generated(root)
    subprocess.run(["git", "repack", "-adq"], cwd=repo, env=env, check=True)
    # The repack deleted the generator's loose objects (about 100,000
    # files). On ext4 without a journal (this machine's disk) the inode
    # allocator skips, one by one, inodes freed less than 60 s ago (360 s
    # while their inode table block is unwritten), so every file finalize
    # creates in that window costs several times as much: the pair would
    # time the bench's own deletions. Written out and aged, they cost
    # nothing (docs/PERFORMANCE.md, "Full finalize and the disk").
    os.sync()
    time.sleep(float(os.environ.get("SETTLE_SECONDS", "65")))
    if "verify" in WANT:
        verify_pair(n, repo, env, runs)
    if "log" in WANT:
        log_pairs(n, repo, env, runs)


def verify_pair(n, repo, env, runs):
    import json
    report_json = json.loads(subprocess.run([LEDGER, "verify", "--json"], cwd=repo, env=env,
                                            check=True, capture_output=True).stdout)
    signatures = report_json["records"]
    floor, ours, our_rss = [], [], 0
    for _ in range(runs):
        out = subprocess.run([FLOOR, str(signatures), "1400"], check=True, capture_output=True).stdout
        floor.append(float(out) / 1000)
        w, r = timed([LEDGER, "verify"], repo, env)
        ours.append(w); our_rss = max(our_rss, r)
    report(f"verify of {n} generated runs ({signatures} record signatures, packed), {runs} runs each: "
           f"ed25519 verify_strict of {signatures} signatures on all cores vs `ledger verify`",
           floor, ours, 0, our_rss, "<= 2x (>= 50% of the floor's throughput)")


def log_pairs(n, repo, env, runs):
    """`ledger log` and `ledger status` once the ledger's tip has been seen
    (the first call after a new tip brings the run index up to date; it is
    timed once, apart)."""
    commits = subprocess.run(["git", "rev-list", "--count", "refs/heads/ledger"], cwd=repo, env=env,
                             check=True, capture_output=True, text=True).stdout.strip()
    first, first_rss = timed([LEDGER, "log"], repo, env)
    print(f"first `ledger log` of the {n}-run ledger (builds the run index): "
          f"{first * 1000:.0f} ms, RSS {first_rss / 1024:.1f} MiB")
    for command in (["log"], ["status"]):
        base, ours, base_rss, our_rss = [], [], 0, 0
        for _ in range(runs):
            w, r = timed(["git", "log", "--oneline", "refs/heads/ledger"], repo, env)
            base.append(w); base_rss = max(base_rss, r)
            w, r = timed([LEDGER, *command], repo, env)
            ours.append(w); our_rss = max(our_rss, r)
        report(f"`ledger {command[0]}` of {n} generated runs vs `git log --oneline` of the ledger ref ({commits} commits)",
               base, ours, base_rss, our_rss, "<= 2x")


def bench_pull(root, runs):
    """One new run pulled from a remote ledger of N runs (FINALIZE_RUNS,
    default 10000) vs a plain `git fetch` of the same ref from the same remote
    into a twin clone at the same state."""
    n, remote, env = generated(root)
    run = lambda cwd, *a: subprocess.run(a, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run(remote, "git", "repack", "-adq")
    laptop, twin = os.path.join(root, "laptop"), os.path.join(root, "twin")
    for d in (laptop, twin):
        run(root, "git", "clone", "-q", remote, d)
        run(d, LEDGER, "pull", remote)
    base, ours, base_rss, our_rss = [], [], 0, 0
    for i in range(runs):
        run(remote, LEDGER, "run", "--workflow", "bench", "--tag", f"new{i}", "--owner", "bench", "--", "true")
        w, r = timed(["git", "fetch", "-q", remote, "+refs/heads/ledger:refs/heads/ledger"], twin, env)
        base.append(w); base_rss = max(base_rss, r)
        w, r = timed([LEDGER, "pull", remote], laptop, env)
        ours.append(w); our_rss = max(our_rss, r)
    report(f"pull of one new run from a remote ledger of {n} runs, {runs} runs each: `ledger pull` vs `git fetch` of the same ref",
           base, ours, base_rss, our_rss, "<= 2x")


def main():
    root = tempfile.mkdtemp(prefix="ledger-bench-", dir=os.environ.get("BENCH_DIR"))
    try:
        runs = int(os.environ.get("RUNS", "5"))
        print(f"machine: {os.cpu_count()} cores, {os.uname().release}; ledger {LEDGER}")
        if "big" in WANT:
            repo, env = setup(os.path.join(root, "big"))
            bench_big(repo, env, runs)
        if "dq" in WANT:
            repo, env = setup(os.path.join(root, "dq"))
            bench_dq(repo, env, max(3, runs // 2))
        if "finalize" in WANT:
            bench_finalize(os.path.join(root, "finalize"), max(3, runs // 2))
        if "verify" in WANT or "log" in WANT:
            bench_verify(os.path.join(root, "verify"), max(3, runs))
        if "pull" in WANT:
            bench_pull(os.path.join(root, "pull"), max(3, runs))
        if "fixed" in WANT:
            repo, env = setup(os.path.join(root, "fixed"))
            bench_fixed(repo, env, runs * 4)
    finally:
        shutil.rmtree(root, ignore_errors=True)


main()
