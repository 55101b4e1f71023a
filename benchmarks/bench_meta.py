"""Meta-gradient speed against PyTorch, and peak memory with and without rematerialisation.

Speed: one meta-gradient (w.r.t. the LSTM schedule's params) through a 100-step unroll of SGD on
a 32-64-1 tanh MLP, batch 128, objective the mean normalised log-loss. JAX: `meta.truncation_loss`
(a `lax.scan` over `learned_schedule`), jitted, with and without `jax.checkpoint`. PyTorch: the
same computation written as a Python loop differentiating through the updates with
`torch.autograd.grad(..., create_graph=True)`, with the same weights and the same minibatches (the
meta-losses are printed and must agree), and the same loop with TorchOpt's functional optimizer
(`torchopt` 0.7, in the `bench` extra; skipped if not installed). Timings are interleaved in
rounds, medians reported.

Memory: peak process memory (`resource.getrusage` ru_maxrss, one fresh subprocess per
configuration, so each number is that configuration's own peak) of one jitted meta-gradient
through T = 100, 300, 1000 steps of a ~100k-param MLP (32-300-300-1), batch 128, with and without
rematerialisation, plus XLA's compiled `memory_analysis()` (temporaries) and the peak of a process
that only builds the inputs (the baseline every configuration pays).

Run:  python benchmarks/bench_meta.py                (speed and memory, ~3 minutes on 2 cores)
      python benchmarks/bench_meta.py --part speed
      python benchmarks/bench_meta.py --part memory
"""

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lookahead_jax import LSTMSchedule, learned_schedule, meta

RESULTS = os.path.join(os.path.dirname(__file__), "results")
SGD = optax.sgd(1.0)


def teacher_family(in_features, hidden, seed=0):
    """One fixed teacher-student regression task (tanh MLP student, linear teacher, batch 128).

    Built directly on the `meta.Task` protocol, so the PyTorch side can use the same teacher.
    """
    teacher = np.random.default_rng(seed).normal(size=(in_features, 1)).astype(np.float32)
    teacher /= np.sqrt(in_features)
    model = meta.MLP(hidden=tuple(hidden), out=1)

    def loss(params, x):
        return jnp.mean((model.apply(params, x) - x @ teacher) ** 2)

    def sample_batch(key):
        return jax.random.normal(key, (128, in_features))

    x_fixed = sample_batch(jax.random.key(seed))
    task = meta.Task(
        init_params=lambda key: model.init(key, x_fixed[:1]),
        loss=loss,
        sample_batch=sample_batch,
        full_loss=lambda params: loss(params, x_fixed),
    )
    return (lambda task_key: task), teacher


def setup(in_features, hidden, seed=0):
    """A task slot and a schedule with a non-zero output layer (so the LSTM matters)."""
    family, teacher = teacher_family(in_features, hidden, seed)
    schedule = LSTMSchedule(base_lr=0.05)
    sp = schedule.init_params(jax.random.key(seed))
    k = jax.random.key(seed + 1)
    sp["params"]["out"]["kernel"] = 0.3 * jax.random.normal(k, sp["params"]["out"]["kernel"].shape)
    mp = {"schedule": sp}
    tx = learned_schedule(SGD, schedule, sp)
    state = meta.fresh_state(family, tx, jax.random.key(seed + 2), None)
    return family, teacher, schedule, mp, state


def jax_meta_grad(family, schedule, state, steps, remat):
    def f(mp):
        return meta.truncation_loss(mp, state, family, schedule, SGD, steps, remat=remat)[0]

    return jax.jit(jax.value_and_grad(f))


def torch_meta_grad_fn(family, teacher, schedule, mp, state, steps, torchopt=False):
    """The same meta-loss in PyTorch (same weights, same minibatches); returns a callable.

    With `torchopt=True` the inner SGD step is TorchOpt's functional, differentiable optimizer
    (`torchopt.sgd(1.0).update(..., inplace=False)` scaled by the schedule's rate, then
    `torchopt.apply_updates(..., inplace=False)`), the library's way to write such an unroll; the
    schedule's rate comes from the gradients, so they are taken with `create_graph=True` first.
    """
    import torch

    if torchopt:
        import torchopt as topt

        inner = topt.sgd(lr=1.0)

    task = family(state.task_key)
    _, sub = jax.random.split(state.key)  # the minibatch keys truncation_loss uses
    batches = torch.tensor(np.asarray(jax.vmap(task.sample_batch)(jax.random.split(sub, steps))))
    teacher = torch.tensor(teacher)
    p = state.params["params"]
    weights = []
    for name in sorted(p, key=lambda n: int(n.split("_")[1])):
        weights += [torch.tensor(np.asarray(p[name][k])) for k in ("kernel", "bias")]
    sp = mp["schedule"]["params"]
    lstm = sp["lstm"]
    # torch.nn.LSTMCell's layout: gates (i, f, g, o) stacked along rows, weights transposed.
    w_ih = torch.tensor(np.concatenate([np.asarray(lstm[f"i{g}"]["kernel"]).T for g in "ifgo"]))
    w_hh = torch.tensor(np.concatenate([np.asarray(lstm[f"h{g}"]["kernel"]).T for g in "ifgo"]))
    b_hh = torch.tensor(np.concatenate([np.asarray(lstm[f"h{g}"]["bias"]) for g in "ifgo"]))
    w_out = torch.tensor(np.asarray(sp["out"]["kernel"]))
    b_out = torch.tensor(np.asarray(sp["out"]["bias"]))
    meta_params = [w_ih, w_hh, b_hh, w_out, b_out]
    log_loss0 = float(state.log_loss0)
    clip, decay, n_hidden = schedule.feature_clip, schedule.avg_decay, schedule.hidden_size
    lo, hi = schedule.lr_bounds
    half = 0.5 * (np.log(hi) - np.log(lo))
    tau = (np.log(schedule.base_lr) - 0.5 * (np.log(hi) + np.log(lo))) / half
    step_feats = [
        torch.tensor(
            [min(0.25 * np.log1p(t), clip), np.sin(np.log1p(t)), np.cos(np.log1p(t)), 1.0],
            dtype=torch.float32,
        )
        for t in range(steps)
    ]

    def model(ws, x):
        for i in range(0, len(ws) - 2, 2):
            x = torch.tanh(x @ ws[i] + ws[i + 1])
        return x @ ws[-2] + ws[-1]

    def run():
        for t in meta_params:
            t.requires_grad_(True)
        ws = [w.clone().requires_grad_(True) for w in weights]
        c = h = torch.zeros(n_hidden)
        meta_loss = torch.zeros(())
        inner_state = inner.init(ws) if torchopt else None
        for t in range(steps):
            x = batches[t]
            loss = torch.mean((model(ws, x) - x @ teacher) ** 2)
            grads = torch.autograd.grad(loss, ws, create_graph=True)
            gnorm = torch.sqrt(sum(torch.sum(g * g) for g in grads))
            log_l, log_g = torch.log(loss), torch.log(gnorm)
            if t == 0:
                l_avg = l_init = log_l
                g_avg = g_init = log_g
            rel = torch.stack([log_l - l_avg, log_l - l_init, log_g - g_avg, log_g - g_init])
            feats = torch.cat(
                [
                    torch.clamp(rel, -clip, clip),
                    torch.clamp(0.25 * log_g, -clip, clip)[None],
                    torch.zeros(1),  # the non-finite flag
                    step_feats[t],
                ]
            )
            l_avg = decay * l_avg + (1 - decay) * log_l
            g_avg = decay * g_avg + (1 - decay) * log_g
            gates = w_ih @ feats + w_hh @ h + b_hh
            i, f, g, o = gates.split(n_hidden)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            s = torch.tanh(h @ w_out + b_out)[0]
            lr = schedule.base_lr * torch.exp(half * s * (1 - tau * tau) / (1 + s * tau))
            if torchopt:
                updates, inner_state = inner.update(list(grads), inner_state, inplace=False)
                scaled = [lr * u for u in updates]
                ws = topt.apply_updates(ws, scaled, inplace=False)
            else:
                ws = [w - lr * g for w, g in zip(ws, grads, strict=True)]
            meta_loss = meta_loss + torch.clamp(log_l - log_loss0, max=meta.LOG_LOSS_CAP)
        meta_loss = meta_loss / steps
        meta_grads = torch.autograd.grad(meta_loss, meta_params)
        return float(meta_loss.detach()), meta_grads

    return run


def bench_speed(rounds):
    steps = 100
    family, teacher, schedule, mp, state = setup(32, (64,))
    fns = {
        "jax, remat": jax_meta_grad(family, schedule, state, steps, remat=True),
        "jax, no remat": jax_meta_grad(family, schedule, state, steps, remat=False),
        "pytorch create_graph": torch_meta_grad_fn(family, teacher, schedule, mp, state, steps),
    }
    if importlib.util.find_spec("torchopt") is not None:
        fns["torchopt functional"] = torch_meta_grad_fn(
            family, teacher, schedule, mp, state, steps, torchopt=True
        )
    else:
        print("torchopt row skipped: torchopt is not installed (pip install -e '.[bench]')")

    def call(name):
        if name.startswith("jax"):
            loss, _ = jax.block_until_ready(fns[name](mp))
            return float(loss)
        return fns[name]()[0]

    values = {name: call(name) for name in fns}  # compile / warm up
    # The two implementations compute the same thing: compare the meta-gradients too.
    _, jax_grads = fns["jax, remat"](mp)
    torch_grads = fns["pytorch create_graph"]()[1]
    jax_out = np.asarray(jax_grads["schedule"]["params"]["out"]["kernel"])
    jax_hi = np.asarray(jax_grads["schedule"]["params"]["lstm"]["hi"]["kernel"]).T
    pairs = [(jax_out, torch_grads[3].numpy()), (jax_hi, torch_grads[1].numpy()[: jax_hi.shape[0]])]
    grad_rel_diff = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in pairs)
    if "torchopt functional" in fns:
        topt_grads = fns["torchopt functional"]()[1]
        pairs += [
            (jax_out, topt_grads[3].numpy()),
            (jax_hi, topt_grads[1].numpy()[: jax_hi.shape[0]]),
        ]
        grad_rel_diff = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in pairs)
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name in fns:
            t0 = time.perf_counter()
            call(name)
            times[name].append(time.perf_counter() - t0)
    torch_med = statistics.median(times["pytorch create_graph"])
    print(
        "max relative difference of the meta-gradients, JAX vs PyTorch (and TorchOpt): "
        f"{grad_rel_diff:.2e}"
    )
    out = {
        name: {
            "median_ms": 1e3 * statistics.median(t),
            "meta_loss": values[name],
            "speedup_vs_pytorch": torch_med / statistics.median(t),
        }
        for name, t in times.items()
    }
    out["meta_grad_max_rel_diff_vs_pytorch"] = grad_rel_diff
    return out


MEMORY_MLP = (32, (300, 300))  # 32*300+300 + 300*300+300 + 300+1 = 100,501 params


def memory_child(steps, remat):
    """Runs in a fresh process: one jitted meta-gradient; prints its peak memory as JSON."""
    family, _, schedule, mp, state = setup(*MEMORY_MLP)
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    out = {"steps": steps, "remat": remat, "mlp_params": int(n_params)}
    if steps > 0:
        fn = jax_meta_grad(family, schedule, state, steps, remat)
        compiled = fn.lower(mp).compile()
        analysis = compiled.memory_analysis()
        out["xla_temp_mb"] = analysis.temp_size_in_bytes / 2**20
        out["xla_argument_mb"] = analysis.argument_size_in_bytes / 2**20
        t0 = time.perf_counter()
        loss, grads = jax.block_until_ready(compiled(mp))
        out["run_s"] = time.perf_counter() - t0
        out["meta_loss"] = float(loss)
        out["grads_finite"] = bool(all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads)))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def bench_memory():
    rows = []
    for steps, remat in [(0, True)] + [(t, r) for t in (100, 300, 1000) for r in (True, False)]:
        proc = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(steps), str(int(remat))],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            rows.append({"steps": steps, "remat": remat, "error": proc.stderr[-2000:]})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["speed", "memory", "all"], default="all")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--memory-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], bool(args.memory_child[1]))
        return
    report = {"cpu_count": os.cpu_count(), "jax": jax.__version__}
    if args.part in ("speed", "all"):
        report["speed"] = bench_speed(args.rounds)
        print("\nMeta-gradient through a 100-step unroll (32-64-1 tanh MLP, batch 128, SGD):")
        print(
            f"  {'variant':22s} {'median ms':>10s} {'meta-loss':>10s} {'x faster than torch':>20s}"
        )
        for name, r in report["speed"].items():
            if not isinstance(r, dict):
                continue
            print(
                f"  {name:22s} {r['median_ms']:10.1f} {r['meta_loss']:10.5f} "
                f"{r['speedup_vs_pytorch']:20.2f}"
            )
    if args.part in ("memory", "all"):
        rows = bench_memory()
        report["memory"] = rows
        base = rows[0]["peak_rss_mb"]
        print(
            f"\nPeak memory of one meta-gradient, ~100k-param MLP, batch 128 (baseline process "
            f"{base:.0f} MB):"
        )
        print(f"  {'T':>5s} {'remat':>6s} {'peak RSS MB':>12s} {'XLA temp MB':>12s} {'run s':>7s}")
        for r in rows[1:]:
            if "error" in r:
                print(f"  {r['steps']:5d} {r['remat']!s:>6s}  failed: {r['error'][-200:]}")
                continue
            print(
                f"  {r['steps']:5d} {r['remat']!s:>6s} {r['peak_rss_mb']:12.0f} "
                f"{r['xla_temp_mb']:12.1f} {r['run_s']:7.2f}"
            )
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"bench_meta_{args.part}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
