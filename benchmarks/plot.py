"""The bar chart of ``reports/benchmarks.json``: median ratio neuronix/torch per workload and device."""

from __future__ import annotations

from pathlib import Path

LABELS = {"tiny_chain": "tiny-op\nchain", "mlp": "MLP\nstep", "resnet18": "ResNet-18\nstep",
          "transformer": "transformer\nstep", "resnet18_memory": "ResNet-18\npeak memory"}


def plot(report: dict, path: Path) -> None:
    """Bars at the median ratio, whiskers at min-max over rounds, a dashed line at each target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["results"] if "ratio_median" in r]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4.2))
    for i, r in enumerate(rows):
        target = r.get("target")
        ok = target is None or r["ratio_median"] <= target
        ax.bar(i, r["ratio_median"], color="tab:green" if ok else "tab:orange", width=0.6,
               yerr=[[r["ratio_median"] - r["ratio_min"]], [r["ratio_max"] - r["ratio_median"]]], capsize=4)
        ax.text(i, r["ratio_max"] + 0.02, f"{r['ratio_median']:.2f}", ha="center", va="bottom", fontsize=8)
        if target is not None:
            ax.hlines(target, i - 0.4, i + 0.4, colors="black", linestyles="dashed", linewidth=1)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{LABELS.get(r['name'], r['name'])}\n{r['device']}" for r in rows], fontsize=8)
    ax.set_ylabel("neuronix / torch (median; bars min-max)")
    machine = report.get("machine", {})
    ax.set_title(f"neuronix vs torch eager — {machine.get('cpu_count')} CPUs, torch {machine.get('torch')}, "
                 f"{machine.get('torch_threads')} threads; dashed: target", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
