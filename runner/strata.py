"""Host as a blocking factor: two cells are compared within the hosts that ran them, never across hosts. Pure.

A cell's repeats come from every host that ran it (Slurm nodes, SSH hosts). Pooled as they are, a
host 20% faster than another reads as a cell 20% faster whenever the two cells did not run equally
often on each. So the repeats of a comparison are grouped by the host that measured them (the
record's `host` fact; records without one, a local run's, are one host, LOCAL), and:

- on one host, the two cells are compared as runner/stats.py compares any two (`weigh`);
- over several, only with the host as a stratum (`stratified`): the log-ratio of the two cells'
  mean log seconds on each host, weighted by 1 / (1/n_baseline + 1/n_other) of that host, and a t-test
  and interval on that weighted mean with the spread pooled within hosts (a two-way layout, cell x host);
- not at all where the hosts are not balanced (`unbalanced`): a host that ran one cell but not the
  other, or one cell more than UNEQUAL times as often as the other. The verdict is then not_comparable,
  with the reason.
"""

from __future__ import annotations

import dataclasses
import math
from statistics import median
from typing import Mapping, Sequence

from runner.stats import ALPHA, Evidence, weigh

LOCAL = "local"  # the host of records that name none: a run on one machine
UNEQUAL = 2.0  # a host that ran one cell more than this many times as often as the other makes the pair unbalanced


def host_of(record) -> str:
    """The host that measured a record (a Slurm node, an SSH host), LOCAL where it names none."""
    return record.environment.get("host") or LOCAL


def by_host(values: Sequence[float], hosts: Sequence[str]) -> dict[str, list[float]]:
    """A cell's numbers per repeat, grouped by the host of each repeat, in first-seen order."""
    grouped: dict[str, list[float]] = {}
    for value, host in zip(values, hosts or [LOCAL] * len(values)):
        grouped.setdefault(host or LOCAL, []).append(value)
    return grouped


def unbalanced(baseline: Mapping[str, Sequence[float]], other: Mapping[str, Sequence[float]]) -> str:
    """Why two cells' repeats cannot be pooled over their hosts, in words; "" when they can."""
    for host in dict.fromkeys([*baseline, *other]):
        a, b = len(baseline.get(host, ())), len(other.get(host, ()))
        if not (a and b):
            return (f"host {host} ran {'the baseline' if a else 'the other cell'} ({max(a, b)} repeat(s)) but not "
                    f"{'the other cell' if a else 'the baseline'}, so their difference would be the hosts'")
        if max(a, b) > UNEQUAL * min(a, b):
            return f"host {host} ran the baseline {a} time(s) and the other cell {b}: too unequal to pool over hosts"
    return ""


def weigh_by_host(baseline: Mapping[str, Sequence[float]], other: Mapping[str, Sequence[float]], alpha: float = ALPHA) -> Evidence:
    """Seconds per repeat of two cells, grouped by host -> the evidence, within the host or with the host as a stratum."""
    hosts = tuple(dict.fromkeys([*baseline, *other]))
    if len(hosts) == 1:
        return dataclasses.replace(weigh(baseline[hosts[0]], other[hosts[0]], alpha), hosts=hosts)
    if why := unbalanced(baseline, other):
        a, b = ([value for values in side.values() for value in values] for side in (baseline, other))
        return Evidence(median(a) / median(b), None, None, 1.0, (len(a), len(b)), hosts, why)  # the ratio as it reads, untested
    return stratified(baseline, other, hosts, alpha)


def stratified(baseline: Mapping[str, Sequence[float]], other: Mapping[str, Sequence[float]], hosts: tuple[str, ...],
               alpha: float = ALPHA) -> Evidence:
    """The two cells compared within each host, the hosts' log-ratios combined by weight; the t-test and interval on that."""
    import numpy as np
    from scipy.special import stdtr, stdtrit  # the t distribution's CDF and its inverse, without scipy.stats' import

    a = [np.log(np.asarray(baseline[host], dtype=float)) for host in hosts]
    b = [np.log(np.asarray(other[host], dtype=float)) for host in hosts]
    weights = np.array([1 / (1 / len(x) + 1 / len(y)) for x, y in zip(a, b)])
    log_ratio = float(weights @ np.array([x.mean() - y.mean() for x, y in zip(a, b)]) / weights.sum())
    counts = (sum(len(x) for x in a), sum(len(y) for y in b))
    freedom = sum(counts) - 2 * len(hosts)
    if freedom < 1:  # one repeat per cell and host: no spread within hosts to judge the difference by
        return Evidence(math.exp(log_ratio), None, None, 1.0, counts, hosts)
    spread = sum(float(((x - x.mean()) ** 2).sum() + ((y - y.mean()) ** 2).sum()) for x, y in zip(a, b)) / freedom
    error = math.sqrt(spread / weights.sum())
    if error == 0:  # repeats alike to the last digit within every host: a difference is certain
        return Evidence(math.exp(log_ratio), math.exp(log_ratio), math.exp(log_ratio), float(log_ratio == 0), counts, hosts)
    reach = float(stdtrit(freedom, 1 - alpha / 2)) * error
    p_value = float(2 * stdtr(freedom, -abs(log_ratio) / error))
    return Evidence(math.exp(log_ratio), math.exp(log_ratio - reach), math.exp(log_ratio + reach), p_value, counts, hosts)
