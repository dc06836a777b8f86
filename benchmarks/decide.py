"""The decide step: journeyman's `linear_ts` against MABWiser's LinTS, and a 10M-customer stream.

Part 1 — the same synthetic linear problem for both, in the same run:
N contexts (default 200,000), K actions (20), d features (16). True model: reward of action a
for x is x̃ᵀθ_a with x̃ = [1, x], x ~ N(0, I), θ_a ~ N(0, 0.3²) per coordinate, plus N(0, 1)
noise. L logged rewards (50,000) under a uniformly random logging policy train both:
journeyman through `ArmStatistics.from_observations` + `LinearThompsonSampling.fit` (action
features: a bias column plus a one-hot per action, i.e. a shared model plus one per arm —
MABWiser's disjoint arms with pooling), MABWiser through `MAB(LearningPolicy.LinTS(alpha=1,
l2_lambda=1)).fit(decisions, rewards, contexts)` with contexts x̃ (so both have an intercept).
Then both decide for the N fresh contexts, every action allowed. Timed: journeyman's `choose`
(which also returns each decision's exact propensity) and MABWiser's `predict`, best of
--repeats wall-clock runs each (the machine may be shared: best-of is the least disturbed
run; CPU seconds are reported too). If --mab-sample is set, MABWiser is timed on that many
contexts and its rate extrapolated (`mabwiser_timed_on` says so). Reward: the mean TRUE expected
reward of the chosen actions over all N contexts (MABWiser: over the timed contexts), next to
the oracle (best action) and uniform random.

Cores: both get --threads (default `settings.decide_threads()`, the cores this process may use):
journeyman scores its chunks on that many threads (JOURNEYMAN_THREADS), MABWiser predicts with
`n_jobs` = the same. With more than one, both are also timed on one core (journeyman with 1
thread, MABWiser with n_jobs=1): `ratio_vs_mabwiser` compares journeyman's threaded rate with
MABWiser's better rate of the two, `ratio_vs_mabwiser_1_thread` the single-core rates.

journeyman's parameters: ridge 1, exploration 1, draws M = 32 (the policy defaults). Each
customer follows posterior draw ⌊u·M⌋ of its uniform u; its propensity is the share of the M
draws whose best allowed action is the chosen one — exact for the policy as implemented.

Part 2 — a streamed run: --stream customers (default 10,000,000) with d = 32 features in a
DuckDB file made with SQL (uniform features, consent flags, a quiet-evening flag, a daily-cap
flag, the last message sent), 36 joint actions with factored features (5 messages with tags ×
{email at 08/12/18/20, sms at 10/17/19} + send nothing), fitted on 100,000 uniformly logged
rewards. The customers are streamed with `con.sql(q).to_arrow_reader(batch)`; per batch the
guardrail mask is built (no sms without consent, no email without consent, no hour ≥ 19 for
quiet-evening customers, nothing but no-send once capped, not the last message again) and
`linear_ts.choose` decides (u from a SQL hash of the customer id). Reported: seconds for the
stream (query + Arrow → numpy + mask + choose; generating the file is timed apart) and peak
RSS. The same run at --stream-small customers (1,000,000) shows that peak memory does not grow
with N: both read the same file, whose DuckDB buffer pool is capped (--duckdb-memory).

Every phase runs in its own subprocess, so each peak RSS (getrusage ru_maxrss) is that phase's
own: `peak_rss_mb` / `mabwiser_peak_rss_mb` / `n10m_peak_rss_mb` / `n1m_peak_rss_mb` are whole-
process peaks (data, fitting and the timed step); `*decide_peak_rss_mb` is the peak of the timed
step alone (VmHWM reset through /proc/self/clear_refs just before it); `base_rss_mb` is the RSS
after imports and set-up. About 200 MB of a stream's peak is DuckDB's scan and Arrow output.
BLAS: the phases run with --blas-threads (default 1: two OpenBLAS threads on these skinny float32
GEMMs stalled by 10-70x on a shared 2-core machine) and without OPENBLAS_CORETYPE /
OPENBLAS_L2_SIZE, which, where set, pin an older kernel and slow a current numpy
(--keep-blas-env keeps them); `blas` in the output says which kernel ran. MABWiser runs under
the same settings. --draws 16 halves journeyman's scoring work (propensities are then exact
multiples of 1/16); the default stays the policy's 32.

Usage: python benchmarks/decide.py [--contexts 200000] [--actions 20] [--dim 16]
       [--logged 50000] [--repeats 3] [--threads 0] [--mab-sample 0] [--stream 10000000]
       [--stream-small 1000000] [--batch 65536] [--skip-stream]
Small: python benchmarks/decide.py --contexts 20000 --logged 5000 --stream 200000
       --stream-small 50000
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED = 20260301
STREAM_DIM = 32
MESSAGES = {  # id -> tags (offer, tone)
    "m1": ("discount", "urgent"),
    "m2": ("discount", "friendly"),
    "m3": ("content", "friendly"),
    "m4": ("bundle", "urgent"),
    "m5": ("content", "neutral"),
}
SLOTS = [("email", 8), ("email", 12), ("email", 18), ("email", 20)]
SLOTS += [("sms", 10), ("sms", 17), ("sms", 19)]


def _rss_mb() -> float:
    """Current resident set size (Linux /proc), MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    """This process's peak RSS (since the last `_reset_peak`, where the kernel allows), MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _process_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> bool:
    """Start a new peak-RSS window (Linux ≥ 4.0: clear_refs 5 resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _blas() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(
        f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
        f"threads={i.get('num_threads')}"
        for i in info
    )


# ---------------------------------------------------------------- part 1: the K-armed problem


def _problem(args: argparse.Namespace):
    rng = np.random.default_rng(SEED)
    k, d = args.actions, args.dim
    theta = rng.normal(scale=0.3, size=(k, d + 1))
    x_log = rng.normal(size=(args.logged, d))
    a_log = rng.integers(0, k, args.logged)
    r_log = np.einsum("nj,nj->n", np.column_stack([np.ones(args.logged), x_log]), theta[a_log])
    r_log = r_log + rng.normal(size=args.logged)
    x = rng.normal(size=(args.contexts, d))
    return theta, x_log, a_log, r_log, x


def _true_value(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(x)), x]) @ theta.T  # (n, K)


def phase_journeyman(args: argparse.Namespace) -> dict:
    from journeyman.decisioning.action_features import ActionFeatures
    from journeyman.decisioning.actions import ActionSpace
    from journeyman.decisioning.learning import ArmStatistics
    from journeyman.decisioning.policies.base import DecisionContext
    from journeyman.decisioning.policies.linear import LinearThompsonSampling

    theta, x_log, a_log, r_log, x = _problem(args)
    k, d = args.actions, args.dim
    ids = np.array([f"a{i:03d}" for i in range(k)])
    space = ActionSpace(
        action_id=ids,
        message_id=ids,
        channel=np.full(k, "email"),
        hour=np.full(k, 9, dtype=np.int64),
        is_send=np.ones(k, dtype=bool),
    )
    phi = ActionFeatures(
        ["bias"] + [f"arm={a}" for a in ids], np.column_stack([np.ones(k), np.eye(k)])
    )
    names = [f"f{j}" for j in range(d)]
    t0 = time.perf_counter()
    stats = ArmStatistics.from_observations(names, x_log, ids[a_log], r_log)
    policy = LinearThompsonSampling({"draws": args.draws})
    policy.fit(stats, phi, list(ids))
    fit_s = time.perf_counter() - t0
    ctx = DecisionContext(date(2026, 3, 2), space, x, names, {}, "bench:2026-03-02")
    allowed = np.ones((len(x), k), dtype=bool)
    u = np.random.default_rng(SEED + 1).random(len(x))
    process_peak = _process_peak_rss_mb()
    base = _rss_mb()
    _reset_peak()
    walls, cpus = [], []
    for _ in range(args.repeats):
        policy._draw_cache = None  # time the day's posterior draws too, as on a first call
        t, c = time.perf_counter(), time.process_time()
        choice = policy.choose(ctx, allowed, u)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    decide_peak = _peak_rss_mb()
    value = _true_value(theta, x)
    return {
        "decide_s": min(walls),
        "decide_cpu_s": min(cpus),
        "fit_s": fit_s,
        "mean_reward": float(value[np.arange(len(x)), choice.action].mean()),
        "oracle_mean_reward": float(value.max(axis=1).mean()),
        "random_mean_reward": float(value.mean()),
        "mean_propensity": float(choice.propensity.mean()),
        "share_propensity_1": float((choice.propensity == 1).mean()),
        "base_rss_mb": base,
        "decide_peak_rss_mb": decide_peak,
        "peak_rss_mb": max(process_peak, _process_peak_rss_mb()),
    }


def phase_mabwiser(args: argparse.Namespace) -> dict:
    from mabwiser.mab import MAB, LearningPolicy

    theta, x_log, a_log, r_log, x = _problem(args)
    n = args.mab_sample or len(x)
    xs = x[:n]
    t0 = time.perf_counter()
    policy = LearningPolicy.LinTS(alpha=1.0, l2_lambda=1.0)
    mab = MAB(list(range(args.actions)), policy, seed=7, n_jobs=args.threads)
    mab.fit(a_log, r_log, np.column_stack([np.ones(len(x_log)), x_log]))
    fit_s = time.perf_counter() - t0
    contexts = np.column_stack([np.ones(n), xs])
    process_peak = _process_peak_rss_mb()
    base = _rss_mb()
    _reset_peak()
    walls, cpus = [], []
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        chosen = np.asarray(mab.predict(contexts))
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    decide_peak = _peak_rss_mb()
    value = _true_value(theta, xs)
    return {
        "decide_s": min(walls),
        "decide_cpu_s": min(cpus),
        "timed_on": n,
        "n_jobs": args.threads,
        "fit_s": fit_s,
        "mean_reward": float(value[np.arange(n), chosen].mean()),
        "base_rss_mb": base,
        "decide_peak_rss_mb": decide_peak,
        "peak_rss_mb": max(process_peak, _process_peak_rss_mb()),
    }


# ---------------------------------------------------------------- part 2: the streamed run


def _stream_space():
    from journeyman.decisioning.action_features import ActionFeatures
    from journeyman.decisioning.actions import NO_SEND, ActionSpace

    rows = [(f"{m}/{ch}/{h:02d}", m, ch, h, True) for m in MESSAGES for ch, h in SLOTS]
    rows.append((NO_SEND, "", "", -1, False))
    ids, msgs, chans, hours, sends = (np.array(col) for col in zip(*rows, strict=True))
    space = ActionSpace(ids, msgs, chans, hours.astype(np.int64), sends.astype(bool))
    tags = sorted({f"offer={o}" for o, _ in MESSAGES.values()})
    tags += sorted({f"tone={t}" for _, t in MESSAGES.values()})
    names = ["bias", "send", "channel=email", "channel=sms"]
    names += [f"hour={h:02d}" for h in sorted({h for _, h in SLOTS})] + tags
    names += [f"message={m}" for m in MESSAGES]
    col = {n: i for i, n in enumerate(names)}
    matrix = np.zeros((space.size, len(names)))
    matrix[:, col["bias"]] = 1.0
    for a in range(space.size):
        if not space.is_send[a]:
            continue
        offer, tone = MESSAGES[str(msgs[a])]
        for n in ("send", f"channel={chans[a]}", f"hour={int(hours[a]):02d}", f"offer={offer}"):
            matrix[a, col[n]] = 1.0
        matrix[a, col[f"tone={tone}"]] = 1.0
        matrix[a, col[f"message={msgs[a]}"]] = 1.0
    return space, ActionFeatures(names, matrix)


def phase_generate(args: argparse.Namespace) -> dict:
    import duckdb

    path = Path(args.db)
    path.unlink(missing_ok=True)
    features = ", ".join(f"(random() * 2 - 1)::FLOAT AS f{j}" for j in range(STREAM_DIM))
    t0 = time.perf_counter()
    con = duckdb.connect(str(path))
    con.execute(f"SET memory_limit = '{args.duckdb_memory}'")
    con.execute(
        f"""
        CREATE TABLE customers AS
        SELECT i AS customer_id, {features},
               random() < 0.9 AS email_consent,
               random() < 0.55 AS sms_consent,
               random() < 0.3 AS quiet_evening,
               random() < 0.05 AS capped,
               (floor(random() * 6))::TINYINT AS last_message  -- 0: none, j: m<j>
        FROM range({args.stream}) t(i)
        """
    )
    con.close()
    return {"generate_s": time.perf_counter() - t0, "db_mb": path.stat().st_size / 2**20}


def _allowed(space, batch: dict) -> np.ndarray:
    """The guardrail mask of one batch: consent, quiet evening, daily cap, no repeat."""
    n = len(batch["customer_id"])
    allowed = np.ones((n, space.size), dtype=bool)
    email, sms = space.channel == "email", space.channel == "sms"
    allowed[:, email] &= batch["email_consent"][:, None]
    allowed[:, sms] &= batch["sms_consent"][:, None]
    late = space.is_send & (space.hour >= 19)
    allowed[:, late] &= ~batch["quiet_evening"][:, None]
    allowed[:, space.is_send] &= ~batch["capped"][:, None]
    last = batch["last_message"]
    for j, m in enumerate(MESSAGES, start=1):
        allowed[:, space.message_id == m] &= (last != j)[:, None]
    return allowed


def phase_stream(args: argparse.Namespace) -> dict:
    import duckdb
    import pyarrow as pa

    from journeyman.decisioning.learning import ArmStatistics
    from journeyman.decisioning.policies.base import DecisionContext
    from journeyman.decisioning.policies.linear import LinearThompsonSampling

    space, phi = _stream_space()
    rng = np.random.default_rng(SEED + 2)
    theta = rng.normal(scale=0.2, size=(STREAM_DIM + 1, phi.matrix.shape[1]))
    n_log = args.stream_logged
    x_log = rng.uniform(-1, 1, size=(n_log, STREAM_DIM))
    a_log = rng.integers(0, space.size, n_log)
    value = np.column_stack([np.ones(n_log), x_log]) @ theta @ phi.matrix.T
    r_log = value[np.arange(n_log), a_log] + rng.normal(size=n_log)
    names = [f"f{j}" for j in range(STREAM_DIM)]
    stats = ArmStatistics.from_observations(names, x_log, space.action_id[a_log], r_log)
    policy = LinearThompsonSampling({"draws": args.draws})
    policy.fit(stats, phi, list(space.action_id))
    del x_log, a_log, value, r_log

    con = duckdb.connect(args.db, read_only=True)
    con.execute(f"SET memory_limit = '{args.duckdb_memory}'")
    feature_cols = ", ".join(names)
    query = f"""
        SELECT customer_id, {feature_cols}, email_consent, sms_consent, quiet_evening, capped,
               last_message,
               (hash(customer_id, 'decide:2026-03-02') >> 11)::DOUBLE / 9007199254740992.0 AS u
        FROM customers WHERE customer_id < {args.n}
    """
    process_peak = _process_peak_rss_mb()
    base = _rss_mb()
    windowed = _reset_peak()
    counts = np.zeros(space.size + 1, dtype=np.int64)
    prop_sum, rows, batches = 0.0, 0, 0
    t0 = time.perf_counter()
    reader = con.sql(query).to_arrow_reader(args.batch)
    for record in reader:
        batch: dict[str, np.ndarray] = {}
        for name in ("customer_id", "email_consent", "sms_consent", "quiet_evening", "capped"):
            batch[name] = record.column(name).to_numpy(zero_copy_only=False)
        batch["last_message"] = record.column("last_message").to_numpy()
        cols = [record.column(f).to_numpy() for f in names]
        x = np.empty((record.num_rows, STREAM_DIM), dtype=np.float32)
        for j, c in enumerate(cols):
            x[:, j] = c
        u = record.column("u").to_numpy()
        allowed = _allowed(space, batch)
        ctx = DecisionContext(date(2026, 3, 2), space, x, names, {}, "stream:2026-03-02")
        choice = policy.choose(ctx, allowed, u)
        counts += np.bincount(choice.action + 1, minlength=space.size + 1)
        prop_sum += float(choice.propensity.sum())
        rows += record.num_rows
        batches += 1
    seconds = time.perf_counter() - t0
    stream_peak = _peak_rss_mb()
    assert isinstance(reader, pa.RecordBatchReader) and rows == args.n, rows
    con.close()
    top = np.argsort(counts[1:])[::-1][:3]
    return {
        "n": rows,
        "seconds": seconds,
        "decisions_per_s": rows / seconds,
        "batches": batches,
        "no_allowed_share": float(counts[0] / rows),
        "no_send_share": float(counts[space.size] / rows),
        "mean_propensity": prop_sum / rows,
        "top_actions": [str(space.action_id[a]) for a in top],
        "base_rss_mb": base,
        "stream_peak_rss_mb": stream_peak,
        "peak_window": "stream" if windowed else "process",
        "peak_rss_mb": max(process_peak, _process_peak_rss_mb()),
    }


# ---------------------------------------------------------------- driver


def _run_phase(args: argparse.Namespace, phase: str, **extra) -> dict:
    env = dict(os.environ)
    if not args.keep_blas_env:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    env["JOURNEYMAN_THREADS"] = str(extra.get("threads", args.threads))
    if args.blas_threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.blas_threads)
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--args",
        json.dumps({**vars(args), **extra}),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"phase {phase} failed")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {phase}: {json.dumps(result)}", flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--contexts", type=int, default=200_000)
    p.add_argument("--actions", type=int, default=20)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--logged", type=int, default=50_000)
    p.add_argument("--draws", type=int, default=32, help="linear_ts posterior draws M")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mab-sample", type=int, default=0, help="time MABWiser on this many (0: all)")
    p.add_argument("--stream", type=int, default=10_000_000)
    p.add_argument("--stream-small", type=int, default=1_000_000)
    p.add_argument("--stream-logged", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=65_536, help="Arrow batch size of the stream")
    p.add_argument("--duckdb-memory", default="64MB")
    p.add_argument("--skip-stream", action="store_true")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="cores for both (journeyman threads, MABWiser n_jobs); 0: settings.decide_threads()",
    )
    p.add_argument("--blas-threads", type=int, default=1, help="0: the BLAS default")
    p.add_argument("--keep-blas-env", action="store_true")
    p.add_argument("--db", default="", help="DuckDB file for the stream (default: a temp dir)")
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--args", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.phase:
        inner = argparse.Namespace(**json.loads(args.args))
        phases = {
            "journeyman": phase_journeyman,
            "mabwiser": phase_mabwiser,
            "generate": phase_generate,
            "stream": phase_stream,
        }
        result = phases[args.phase](inner)
        result["blas"] = _blas()
        print(json.dumps(result))
        return

    from journeyman.settings import decide_threads

    args.threads = args.threads or decide_threads()
    print(f"decide benchmark: {os.cpu_count()} cores, load average {os.getloadavg()}", flush=True)
    jm = _run_phase(args, "journeyman")
    mabs = [_run_phase(args, "mabwiser")]
    if args.threads > 1:  # single-core figures too; MABWiser's peer rate is its better one
        jm1 = _run_phase(args, "journeyman", threads=1)
        mabs.append(_run_phase(args, "mabwiser", threads=1))
    else:
        jm1 = jm
    mab = max(mabs, key=lambda m: m["timed_on"] / m["decide_s"])
    mab1 = mabs[-1]
    rate = args.contexts / jm["decide_s"]
    mab_rate = mab["timed_on"] / mab["decide_s"]
    rate1 = args.contexts / jm1["decide_s"]
    mab1_rate = mab1["timed_on"] / mab1["decide_s"]
    result = {
        "decisions_per_s": round(rate),
        "mabwiser_decisions_per_s": round(mab_rate),
        "ratio_vs_mabwiser": round(rate / mab_rate, 2),
        "threads": args.threads,
        "mabwiser_n_jobs": mab["n_jobs"],
        "decisions_per_s_1_thread": round(rate1),
        "mabwiser_decisions_per_s_1_job": round(mab1_rate),
        "ratio_vs_mabwiser_1_thread": round(rate1 / mab1_rate, 2),
        "mean_reward": round(jm["mean_reward"], 5),
        "mabwiser_mean_reward": round(mab["mean_reward"], 5),
        "reward_ratio_vs_mabwiser": round(jm["mean_reward"] / mab["mean_reward"], 4),
        "oracle_mean_reward": round(jm["oracle_mean_reward"], 5),
        "random_mean_reward": round(jm["random_mean_reward"], 5),
        "peak_rss_mb": round(jm["peak_rss_mb"], 1),
        "base_rss_mb": round(jm["base_rss_mb"], 1),
        "decide_peak_rss_mb": round(jm["decide_peak_rss_mb"], 1),
        "mabwiser_peak_rss_mb": round(mab["peak_rss_mb"], 1),
        "mabwiser_decide_peak_rss_mb": round(mab["decide_peak_rss_mb"], 1),
        "cpu_ratio_vs_mabwiser": round(
            (args.contexts / jm["decide_cpu_s"]) / (mab["timed_on"] / mab["decide_cpu_s"]), 2
        ),
        "mabwiser_timed_on": mab["timed_on"],
        "mabwiser_extrapolated": mab["timed_on"] < args.contexts,
        "contexts": args.contexts,
        "actions": args.actions,
        "dim": args.dim,
        "draws": args.draws,
    }
    if not args.skip_stream:
        with tempfile.TemporaryDirectory(prefix="jm-decide-") as tmp:
            db = args.db or str(Path(tmp) / "customers.duckdb")
            args.db = db
            gen = _run_phase(args, "generate")
            big = _run_phase(args, "stream", n=args.stream)
            small = _run_phase(args, "stream", n=args.stream_small)
        result.update(
            {
                "n10m_seconds": round(big["seconds"], 2),
                "n10m_peak_rss_mb": round(big["peak_rss_mb"], 1),
                "n10m_customers": big["n"],
                "n10m_decisions_per_s": round(big["decisions_per_s"]),
                "n1m_seconds": round(small["seconds"], 2),
                "n1m_peak_rss_mb": round(small["peak_rss_mb"], 1),
                "n1m_customers": small["n"],
                "stream_generate_seconds": round(gen["generate_s"], 2),
                "stream_db_mb": round(gen["db_mb"], 1),
                "stream_batch": args.batch,
            }
        )
    result["blas"] = jm["blas"]
    result["load_average"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
