#!/usr/bin/env python3
"""Independent reference for the AMCL objectives (pure Python, no dependencies).

Writes golden.json: fixed inputs and the losses the formulas of docs/METHOD.md give for them
(the authors' release: the top-k objective, the shared dot-product temperature network, SimSiam
with the full beta on each Omega, Barlow Twins with channel temperatures; and the other forms,
the centred temperature network among them).
The Rust tests (crates/amcl-core/tests/golden.rs) read the inputs, run amcl-core, and compare.
Regenerate with:  python3 tests/reference/generate.py
"""
import json
import math
import os
import random

rng = random.Random(20241001)


def uniform(shape, lo, hi):
    if len(shape) == 1:
        return [rng.uniform(lo, hi) for _ in range(shape[0])]
    return [uniform(shape[1:], lo, hi) for _ in range(shape[0])]


def normal(shape):
    if len(shape) == 1:
        return [rng.gauss(0.0, 1.0) for _ in range(shape[0])]
    return [normal(shape[1:]) for _ in range(shape[0])]


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / max(n, 1e-8) for x in v]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def omega(tau, d):
    return d / 2.0 * math.log(tau) + 1.0 / tau


def lse(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


LO, HI = 1e-5, 2.0


def phi(z, w1, b1, w2, b2):
    """The authors' temperature network: Linear(n, H)-ReLU-Linear(H, n); w1 is [n][H]."""
    h = [max(0.0, sum(z[i] * w1[i][j] for i in range(len(z))) + b1[j]) for j in range(len(b1))]
    return [sum(h[j] * w2[j][k] for j in range(len(h))) + b2[k] for k in range(len(b2))]


def dot_tau(za, zb, net):
    """Eq. 3 with the dot-product logit: lo + (hi - lo) sigmoid(-<phi(z_a), phi(z_b)>)."""
    return LO + (HI - LO) * sigmoid(-dot(phi(za, *net), phi(zb, *net)))


def top_k(sims, k):
    """Indices of the k largest similarities (ties: lower index first)."""
    order = sorted(range(len(sims)), key=lambda n: (-sims[n], n))
    return order[:min(k, len(sims))]


def amcl_objective(pos_sim, neg_sim, pos_tau, neg_tau, beta, dim, reduction):
    """Mean over anchors of the sum over heads (docs/METHOD.md)."""
    C, N = len(pos_sim), len(pos_sim[0])
    total = 0.0
    for i in range(N):
        for c in range(C):
            sp, tp = pos_sim[c][i], pos_tau[c][i]
            scaled = [s / t for s, t in zip(neg_sim[c][i], neg_tau[c][i])]
            term = -sp / tp + beta * omega(tp, dim)
            if reduction.startswith("TopK"):
                chosen = top_k(neg_sim[c][i], int(reduction.split(":")[1]))
                term += sum(scaled[n] for n in chosen) / len(chosen)
                term -= beta * sum(math.log(neg_tau[c][i][n]) + 1.0 / neg_tau[c][i][n] for n in chosen)
            elif reduction == "Max":
                n_star = max(range(len(scaled)), key=lambda n: scaled[n])
                term += scaled[n_star] - beta * omega(neg_tau[c][i][n_star], dim)
            else:
                z = lse(scaled)
                p = [math.exp(s - z) for s in scaled]
                term += lse([sp / tp] + scaled)
                term -= beta * sum(pn * omega(t, dim) for pn, t in zip(p, neg_tau[c][i]))
            total += term
    return total / N


def nt_xent(za, zb, t):
    z = [unit(v) for v in za + zb]
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        logits = [dot(z[i], z[j]) / t for j in range(n2) if j != i]
        pos = dot(z[i], z[(i + n) % n2]) / t
        total += lse(logits) - pos
    return total / n2


def simclr_amcl(za, zb, tau, beta, dim, reduction):
    C, N = len(za), len(za[0])
    pos_sim, neg_sim, pos_tau, neg_tau = [], [], [], []
    for c in range(C):
        z = za[c] + zb[c]
        ps, ns, pt, nt = [], [], [], []
        for i in range(2 * N):
            p = (i + N) % (2 * N)
            ps.append(dot(z[i], z[p]))
            pt.append(tau[c][i][p])
            ns.append([dot(z[i], z[j]) for j in range(2 * N) if j not in (i, p)])
            nt.append([tau[c][i][j] for j in range(2 * N) if j not in (i, p)])
        pos_sim.append(ps); neg_sim.append(ns); pos_tau.append(pt); neg_tau.append(nt)
    return amcl_objective(pos_sim, neg_sim, pos_tau, neg_tau, beta, dim, reduction)


def moco(q, k, queue, pos_tau, neg_tau, t, beta, dim, reduction):
    C, N = len(q), len(q[0])
    pos_sim = [[dot(q[c][i], k[c][i]) for i in range(N)] for c in range(C)]
    neg_sim = [[[dot(q[c][i], e) for e in queue[c]] for i in range(N)] for c in range(C)]
    if pos_tau is None:  # plain InfoNCE
        pos_tau = [[t] * N for _ in range(C)]
        neg_tau = [[[t] * len(queue[0]) for _ in range(N)] for _ in range(C)]
        beta, reduction = 0.0, "LogSumExp"
    return amcl_objective(pos_sim, neg_sim, pos_tau, neg_tau, beta, dim, reduction)


def simsiam(p1, p2, z1, z2, t1, t2, beta, dim):
    C, N = len(p1), len(p1[0])
    total = 0.0
    for c in range(C):
        for i in range(N):
            s12 = dot(unit(p1[c][i]), unit(z2[c][i]))
            s21 = dot(unit(p2[c][i]), unit(z1[c][i]))
            if t1 is None:
                total += 0.5 * (-s12 - s21)
            else:
                # The authors' release: the full beta on each Omega.
                a, b = t1[c][i], t2[c][i]
                total += -0.5 * s12 / a - 0.5 * s21 / b + beta * omega(a, dim) + beta * omega(b, dim)
    return total / N


def standardise_columns(z):
    """Each dimension's column over the batch, centred and divided by its unbiased std."""
    N, d = len(z), len(z[0])
    cols = []
    for l in range(d):
        col = [z[i][l] for i in range(N)]
        m = sum(col) / N
        var = sum((x - m) ** 2 for x in col) / (N - 1)
        cols.append([(x - m) / math.sqrt(var + 1e-12) for x in col])
    return cols


def barlow_channel_taus(z1, z2, net):
    """Temperatures of every pair of channel vectors (unit-norm standardised columns)."""
    C, N = len(z1), len(z1[0])
    tdiag, toff = [], []
    for c in range(C):
        x = [[v / math.sqrt(N - 1) for v in col] for col in standardise_columns(z1[c])]
        y = [[v / math.sqrt(N - 1) for v in col] for col in standardise_columns(z2[c])]
        t = [[dot_tau(xl, ym, net) for ym in y] for xl in x]
        tdiag.append([t[l][l] for l in range(len(t))])
        toff.append(t)
    return tdiag, toff


def barlow(z1, z2, tdiag, toff, lam, beta):
    C, N, d = len(z1), len(z1[0]), len(z1[0][0])
    total = 0.0
    for c in range(C):
        a, b = standardise_columns(z1[c]), standardise_columns(z2[c])
        cc = [[sum(a[l][i] * b[m][i] for i in range(N)) / N for m in range(d)] for l in range(d)]
        for l in range(d):
            for m in range(d):
                if l == m:
                    if tdiag is None:
                        total += (1 - cc[l][l]) ** 2
                    else:
                        t = tdiag[c][l]
                        total += (1 - cc[l][l] / t) ** 2 + beta * omega(t, d)
                else:
                    if toff is None:
                        total += lam * cc[l][m] ** 2
                    else:
                        t = toff[c][l][m]
                        total += lam * cc[l][m] ** 2 / t - beta * omega(t, d)
    return total


cases = {"objective": [], "top_k": [], "nt_xent": [], "temperature": [], "simclr": [],
         "moco": [], "simsiam": [], "barlow": []}

C, N, K, D = 2, 3, 4, 8
for tau_lo in (0.05, 1e-5):
    pos_sim, neg_sim = uniform([C, N], -1, 1), uniform([C, N, K], -1, 1)
    pos_tau = uniform([C, N], tau_lo, 2.0)
    neg_tau = uniform([C, N, K], max(tau_lo, 0.05), 2.0)
    if tau_lo < 1e-3:
        pos_tau[0][0] = 1e-5
        neg_tau[1][2][1] = 1e-5
    for reduction in ("Max", "LogSumExp"):
        for beta in (0.0, 0.1, 0.5):
            cases["objective"].append(dict(
                pos_sim=pos_sim, neg_sim=neg_sim, pos_tau=pos_tau, neg_tau=neg_tau, beta=beta,
                dim=D, reduction=reduction,
                loss=amcl_objective(pos_sim, neg_sim, pos_tau, neg_tau, beta, D, reduction)))

# The top-k form: k below, at and above the K = 4 negatives; beta 0, the authors' 1e-4, 0.1.
pos_sim, neg_sim = uniform([C, N], -1, 1), uniform([C, N, K], -1, 1)
pos_tau, neg_tau = uniform([C, N], 0.05, 2.0), uniform([C, N, K], 0.05, 2.0)
pos_tau[1][1] = 1e-5
for k in (2, 4, 7):
    for beta in (0.0, 1e-4, 0.1):
        reduction = f"TopK:{k}"
        cases["top_k"].append(dict(
            pos_sim=pos_sim, neg_sim=neg_sim, pos_tau=pos_tau, neg_tau=neg_tau, beta=beta, dim=D,
            reduction=reduction,
            loss=amcl_objective(pos_sim, neg_sim, pos_tau, neg_tau, beta, D, reduction)))


def temperature_net(n, hidden, scale):
    return (normal_scaled([n, hidden], scale), normal_scaled([hidden], scale),
            normal_scaled([hidden, n], scale), normal_scaled([n], scale))


def normal_scaled(shape, scale):
    if len(shape) == 1:
        return [scale * rng.gauss(0.0, 1.0) for _ in range(shape[0])]
    return [normal_scaled(shape[1:], scale) for _ in range(shape[0])]


# The shared dot-product temperature network (hidden width 128, as in the model) on unit vectors.
H = 128
for scale in (0.1, 0.3):
    net = temperature_net(4, H, scale)
    za = [unit(v) for v in normal([3, 4])]
    zb = [unit(v) for v in normal([5, 4])]
    cases["temperature"].append(dict(
        w1=net[0], b1=net[1], w2=net[2], b2=net[3], z_a=za, z_b=zb,
        tau=[[dot_tau(a, b, net) for b in zb] for a in za]))

for t in (0.5, 0.1):
    za, zb = normal([4, 5]), normal([4, 5])
    cases["nt_xent"].append(dict(z_a=za, z_b=zb, temperature=t, loss=nt_xent(za, zb, t)))

d = 4
za = [[unit(v) for v in normal([N, d])] for _ in range(C)]
zb = [[unit(v) for v in normal([N, d])] for _ in range(C)]
tau = uniform([C, 2 * N, 2 * N], 0.05, 2.0)
for reduction, beta in (("Max", 0.1), ("LogSumExp", 0.1), ("TopK:3", 1e-4), ("TopK:100", 0.1)):
    cases["simclr"].append(dict(z_a=za, z_b=zb, tau=tau, beta=beta, dim=d, reduction=reduction,
                                loss=simclr_amcl(za, zb, tau, beta, d, reduction)))

q = [[unit(v) for v in normal([N, d])] for _ in range(C)]
k = [[unit(v) for v in normal([N, d])] for _ in range(C)]
queue = [[unit(v) for v in normal([5, d])] for _ in range(C)]
pt, nt = uniform([C, N], 0.05, 2.0), uniform([C, N, 5], 0.05, 2.0)
for adaptive in (False, True):
    for reduction in ("Max", "LogSumExp", "TopK:2"):
        args = (pt, nt) if adaptive else (None, None)
        cases["moco"].append(dict(q=q, k=k, queue=queue, pos_tau=args[0], neg_tau=args[1],
                                  temperature=0.2, beta=0.1, dim=d, reduction=reduction,
                                  loss=moco(q, k, queue, *args, 0.2, 0.1, d, reduction)))

p1, p2, z1, z2 = normal([C, N, d]), normal([C, N, d]), normal([C, N, d]), normal([C, N, d])
t1, t2 = uniform([C, N], 0.05, 2.0), uniform([C, N], 0.05, 2.0)
for adaptive in (False, True):
    a, b = (t1, t2) if adaptive else (None, None)
    cases["simsiam"].append(dict(p1=p1, p2=p2, z1=z1, z2=z2, tau1=a, tau2=b, beta=0.1, dim=d,
                                 loss=simsiam(p1, p2, z1, z2, a, b, 0.1, d)))

# Barlow Twins: plain, and with the temperatures of the channel network (input B = 6).
z1, z2 = normal([C, 6, d]), normal([C, 6, d])
net = temperature_net(6, H, 0.2)
td, to = barlow_channel_taus(z1, z2, net)
for adaptive in (False, True):
    a, b = (td, to) if adaptive else (None, None)
    cases["barlow"].append(dict(z1=z1, z2=z2, tau_diag=a, tau_off=b, lambda_=5e-3, beta=0.1,
                                w1=net[0], b1=net[1], w2=net[2], b2=net[3],
                                loss=barlow(z1, z2, a, b, 5e-3, 0.1)))


def centred_taus(z, net, hi):
    """The centred form (docs/METHOD.md): phi's projections minus their mean over the set, then
    Eq. 3 with lo = LO and the given hi, for every ordered pair of the set."""
    p = [phi(v, *net) for v in z]
    bar = [sum(col) / len(p) for col in zip(*p)]
    c = [[x - m for x, m in zip(v, bar)] for v in p]
    return [[LO + (hi - LO) * sigmoid(-dot(a, b)) for b in c] for a in c]


# The centred temperature network on one set of views (the batch that sets the centre).
cases["centred_temperature"] = []
for scale, hi in ((0.3, 1.0), (0.5, 0.2)):
    net = temperature_net(4, H, scale)
    z = [unit(v) for v in normal([6, 4])]
    cases["centred_temperature"].append(dict(
        w1=net[0], b1=net[1], w2=net[2], b2=net[3], z=z, hi=hi, tau=centred_taus(z, net, hi)))

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json")
with open(out, "w") as f:
    json.dump(cases, f, indent=1)
print(f"wrote {out}: " + ", ".join(f"{k} {len(v)}" for k, v in cases.items()))
