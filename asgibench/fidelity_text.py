"""What a person reads of `asgibench fidelity` (asgibench/fidelity.py measures): one line per
comparison as it is printed, and fidelity.md (the tables of fidelity.json). Nothing here measures."""
from __future__ import annotations


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:.0f}%"


def _around(run: dict, key: str = "rps") -> str:
    """The independent generator's runs before and after Locust's, and how far apart they are."""
    if "before" not in run:
        return "-"
    if run.get("excluded"):
        return f"{run['before'][key]} / {run['after'][key]} ({run['excluded']}: left out)"
    drift = None if run["drift"] is None else 100 * run["drift"]
    return f"{run['before'][key]} / {run['after'][key]} ({_pct(drift)} apart)"


def _shares(row: dict) -> str:
    """Worker CPU shares of a multi-worker row: Locust's trial (summary.balance), then the independent
    generator's runs before and after it; '' for one worker."""
    other = row.get("wrk") or row.get("k6") or {}
    runs = [row["locust"].get("worker_shares")] + [(other.get(k) or {}).get("worker_shares")
                                                   for k in ("before", "after")]
    if not any(runs):
        return ""
    locust, before, after = ("/".join(f"{100 * x:.0f}" for x in r) + "%" if r else "n/a" for r in runs)
    return f"Locust {locust}, independent {before} then {after}"


def _load(row: dict) -> str:
    load = row.get("loadavg_1min")
    return f"{load['start']} -> {load['end']}" if load else "-"


def _ref(row: dict) -> str:
    """The ratio with both sides at reference speed (the verdict's figure when measured)."""
    trials = row.get("trials") or []
    key = row.get("judged_on", "ratio")
    each = ("; trials " + " / ".join(str(t.get(key)) for t in trials)) if len(trials) > 1 else ""
    return ("-" if row.get("ratio_ref") is None else str(row["ratio_ref"])) + each


def line(row: dict) -> str:
    loc, other = row["locust"], row.get("wrk") or row.get("k6")
    tool = "wrk" if "wrk" in row else "k6"
    what = "req/s" if tool == "wrk" else "iterations/s"
    key = "rps" if tool == "wrk" else "iterations_per_s"
    flags = "; ".join(f"{f}: {why}" for f, why in loc["flags"]) or "not flagged"
    shares = f"worker CPU shares {_shares(row)}; " if _shares(row) else ""
    ref = (f", at reference speed {loc.get(key + '_ref')} / {other.get(key + '_ref')} = {row['ratio_ref']} "
           "(the verdict's)" if row.get("ratio_ref") is not None else "")
    return (f"{row['variant']}: Locust {loc[key]} / {tool} {other[key]} {what} = {row['ratio']}{ref} "
            f"[{row['verdict']}] "
            f"({tool} before / after Locust: {_around(other, key)}); "
            f"generator CPU Locust {_pct(loc['cpu_percent_of_one_core'])} of a core, {tool} "
            f"{_pct(other['cpu_percent_of_one_core'])}; server us/request {loc['server_us_per_request']} vs "
            f"{other['server_us_per_request']}; Locust trial {flags}; {shares}load average {_load(row)}")


def capacity_line(c: dict) -> str:
    k6 = c["k6_capacity_rps"]
    k6_text = {"exact": f"{k6} req/s", "above": f"above {k6} req/s", "below": "below the lowest rate tried"}[c["bound"]]
    return (f"{c['variant']}: ladder capacity {c['ladder_capacity_rps']} req/s, k6 keeps p99 <= "
            f"{c['slo']['p99_ms']:g} ms "
            f"up to {k6_text} (steps of {100 * c['resolution']:.0f}%): ratio {c['ratio']} [{c['verdict']}]")


def markdown(out: dict) -> str:
    s = out["settings"]
    md = [f"# asgibench fidelity {out['id']}", "",
          f"Locust against independent generators on the same server, endpoints and concurrency ({s['users']} "
          f"connections / VUs, {s['seconds']:g} s each after a {s['warmup']:g} s warm-up; target within "
          f"{100 * s['tolerance']:.0f}%, or the Locust trial flagged; judged at reference speed: each run's "
          "throughput over the machine's speed factor during it, the speed probe of asgibench/measure.py). "
          f"Machine: {out['machine'].get('cpu_count')} CPUs, load average {out['machine'].get('loadavg')} at "
          "the start.",
          ""]
    if out["wrk"]:
        md += ["## Locust vs wrk, API-only flow", "",
               "| row | Locust req/s | wrk req/s | ratio | at ref. speed | verdict | Locust CPU (1 core) | "
               "Locust machine share | wrk CPU (1 core) | wrk before / after | server us/req Locust / wrk | flags | "
               "worker CPU shares | load avg |", "|" + "---|" * 14]
        for r in out["wrk"]:
            lo, w = r["locust"], r["wrk"]
            md.append(f"| {r['variant']} | {lo['rps']} | {w['rps']} | {r['ratio']} | {_ref(r)} | {r['verdict']} | "
                      f"{_pct(lo['cpu_percent_of_one_core'])} | {lo['machine_share']} | "
                      f"{_pct(w['cpu_percent_of_one_core'])} | {_around(w)} | "
                      f"{lo['server_us_per_request']} / {w['server_us_per_request']} | "
                      f"{'; '.join(f'{f}: {why}' for f, why in lo['flags']) or '-'} | "
                      f"{_shares(r) or '-'} | {_load(r)} |")
        md.append("")
    if out["k6"]:
        md += ["## Locust vs k6, original flow", "",
               "| row | Locust it/s | k6 it/s | ratio | at ref. speed | verdict | exchanges/iteration Locust / k6 | "
               "req/s ratio | Locust CPU | k6 CPU | k6 before / after | server ms/iteration Locust / k6 | "
               "k6 failed checks | load avg |",
               "|" + "---|" * 14]
        for r in out["k6"]:
            lo, k = r["locust"], r["k6"]
            md.append(f"| {r['variant']} | {lo['iterations_per_s']} | {k['iterations_per_s']} | {r['ratio']} | "
                      f"{_ref(r)} | {r['verdict']} | "
                      f"{lo['exchanges_per_iteration']} / {k['exchanges_per_iteration']} | "
                      f"{r['rps_ratio']} | {_pct(lo['cpu_percent_of_one_core'])} | "
                      f"{_pct(k['cpu_percent_of_one_core'])} | {_around(k, 'iterations_per_s')} | "
                      f"{lo['server_ms_per_iteration']} / {k['server_ms_per_iteration']} | {k['checks_failed']} | "
                      f"{_load(r)} |")
        md.append("")
    if out["capacity"]:
        c = out["capacity"]
        md += ["## Capacity at SLO: the ladder vs k6 constant-arrival-rate", "", capacity_line(c), "",
               "| k6 offered req/s | achieved | p99 ms | errors % | dropped | within SLO |", "|" + "---|" * 6]
        md += [f"| {st['rate']} | {st.get('achieved_rps')} | {st.get('p99_ms')} | {st.get('errors_pct')} | "
               f"{st.get('dropped')} | {'yes' if st['ok'] else st.get('reason')} |" for st in c["steps"]]
        md.append("")
    return "\n".join(md)
