"""The report's "Accuracy against cost" section: the front, the seven on it, what halving cost gives up.

Reads only what trials recorded (their cost user attrs, see `study.trial.cost`) and what
`export-model` recorded on the study (`exports`), so it needs neither TensorFlow nor the data.
"""

from __future__ import annotations

from pathlib import Path

from study.figures import plots
from study.markdown_text import count, md, pct, size
from study.stats.front import FRONT_COSTS, CostPoint, cheapest_within, cost_points, halvings, pareto_front
from study.store.record import COST_LABELS, CostKey, StudyKey, export_key

NEAR_BEST = 0.01  # "within 1 point of the best"


def describe(point: CostPoint) -> str:
    """`avg pool, 128 px, a0.25, 2 x Dense(512)` from a point's parameters."""
    p = point.params
    parts = []
    if "pooling" in p:
        parts.append(f"{p['pooling']} pool" if p["pooling"] != "flatten" else "flatten")
    if "image_size" in p:
        parts.append(f"{p['image_size']} px")
    if "alpha" in p:
        parts.append(f"a{p['alpha']:g}")
    if p.get("unfreeze_blocks"):  # 0: the base is frozen, as in every cached-mode trial
        parts.append(f"top {p['unfreeze_blocks']} blocks trained")
    depth = p.get("head_depth")
    if depth is not None:
        parts.append("no hidden layer" if depth == 0 else f"{depth} x Dense({p.get('dense_units')})")
    return ", ".join(parts)


def cost_section(trials, attrs: dict, figures: Path, folder: Path, study_name: str, storage: str = "") -> list[str]:
    lines = ["## Accuracy against cost", ""]
    points = cost_points(trials)
    if not points:
        return lines + ["No completed trial recorded its cost (parameters, multiply-adds, size, latency); "
                        "trials of studies run before costs were measured have none.", ""]
    done = sum(1 for t in trials if t.state.name == "COMPLETE")
    device = (attrs.get(StudyKey.DEVICE) or "this machine").removeprefix("device: ")
    lines += [f"Costs of {len(points)} of {done} completed trials, each measured on the model that takes images "
              "(a cached-mode head with its base): parameters (base + head), multiply-adds for one image "
              "(convolutions and dense layers; batch normalisation is folded away on a phone), the size of the "
              f"saved `.keras` file, and batch-1 latency, the median of 30 calls after 5 warm-up calls on {device}. "
              "A trial is on a front when no other trial is at least as accurate on validation and at most "
              "as costly.", ""]
    objectives = attrs.get(StudyKey.OBJECTIVES, ["accuracy"])
    if len(objectives) > 1:
        lines += [f"The study searched {', '.join(objectives)} as a multi-objective study (no pruning).", ""]
    fronts = {cost: pareto_front(points, cost) for cost in FRONT_COSTS}
    path = plots.cost_front(points, fronts, figures / "cost_front.png")
    lines += [f"![accuracy against cost]({path.relative_to(folder).as_posix()})", ""]

    members = {p.number: p for front in fronts.values() for p in front}
    top = max(points, key=lambda p: (p.accuracy, -p.number))
    exports = attrs.get(StudyKey.EXPORTS, {})
    lines += ["| Trial | Configuration | Validation | Parameters (base + head) | Multiply-adds | Size | "
              "Latency | int8 TFLite: size, test | Front of |", "| :-- | :-- | --: | --: | --: | --: | --: | --: | :-- |"]
    for p in sorted(members.values(), key=lambda p: (-p.accuracy, p.number)):
        on = " and ".join(COST_LABELS[c] for c in FRONT_COSTS if p in fronts[c])
        exported = exports.get(export_key(p.number, "tflite", "int8"))
        int8_text = f"{size(exported['bytes'])}, {pct(exported['accuracy'])}" if exported else "-"
        lines.append(f"| {md(p.label)} | {md(describe(p))} | {pct(p.accuracy)} | {count(p.params_total)} "
                     f"({count(p.params_base)} + {count(p.params_head)}) | {count(p.macs)} | {size(p.model_bytes)} | "
                     f"{p.latency_ms:.1f} ms | {int8_text} | {on} |")
    lines.append("")
    int8 = exports.get(export_key(top.number, "tflite", "int8"))
    float32 = exports.get(export_key(top.number, "tflite", "none"))
    if int8:
        against_tflite = (f", and {size(float32['bytes'])} as float32 TFLite ({float32['bytes'] / int8['bytes']:.1f} "
                          "times)") if float32 else ""
        lines += [f"**The best model as int8 TensorFlow Lite** ({md(top.label)}): {size(int8['bytes'])} against "
                  f"{size(top.model_bytes)} as `.keras` ({top.model_bytes / int8['bytes']:.1f} times smaller"
                  f"{against_tflite}); "
                  f"test accuracy {pct(int8['accuracy'])} measured with the TFLite interpreter, against "
                  f"{pct(int8['keras_accuracy'])} for the Keras model "
                  f"({100 * (int8['accuracy'] - int8['keras_accuracy']):+.2f} points).", ""]
        wide = exports.get(export_key(top.number, "tflite", "int16x8"))
        if wide:
            lines += [f"As int16x8 (int8 weights, 16-bit activations): {size(wide['bytes'])}, test accuracy "
                      f"{pct(wide['accuracy'])} ({100 * (wide['accuracy'] - wide['keras_accuracy']):+.2f} points).", ""]
    else:
        storage_option = f" --storage '{storage}'" if storage else ""
        lines += [f"**The best model as int8 TensorFlow Lite**: not exported yet; `python -m study export-model "
                  f"--study-name {study_name}{storage_option} --trial {top.number} --format tflite --quantize int8 "
                  f"--out best.tflite` measures it and adds it here.", ""]

    lines += ["**What each halving of cost gives up**, from the most accurate model on each front:", ""]
    for cost in FRONT_COSTS:
        front_top = max(fronts[cost], key=lambda p: p.accuracy)
        steps = halvings(fronts[cost], cost)
        show = size if cost == CostKey.MODEL_BYTES else count
        if not steps:
            lines.append(f"- {COST_LABELS[cost]}: no front model costs half of {md(front_top.label)}'s "
                         f"{show(getattr(front_top, cost))}.")
            continue
        groups: list[list] = []  # consecutive halvings that keep the same model are said once
        for step in steps:
            if groups and groups[-1][-1].point.number == step.point.number:
                groups[-1].append(step)
            else:
                groups.append([step])
        parts = []
        for group in groups:
            first, last, point = group[0], group[-1], group[0].point
            span = f"1/{round(1 / first.fraction)}" + (f" to 1/{round(1 / last.fraction)}" if len(group) > 1 else "")
            parts.append(f"{span}: {pct(point.accuracy)} ({md(point.label)}, {show(getattr(point, cost))}, "
                         f"{-100 * first.lost:+.2f} points)")
        lines.append(f"- {COST_LABELS[cost]} (from {md(front_top.label)}, {pct(front_top.accuracy)} at "
                     f"{show(getattr(front_top, cost))}): " + "; ".join(parts) + ".")
    lines.append("")

    cheap = cheapest_within(points, NEAR_BEST, CostKey.PARAMS_TOTAL)
    if cheap is not None:
        ratio = top.params_total / cheap.params_total
        lines += [f"**Within 1 point of the best**: {md(cheap.label)} ({md(describe(cheap))}) reaches "
                  f"{pct(cheap.accuracy)} against the best's {pct(top.accuracy)} ({md(top.label)}) with "
                  f"{count(cheap.params_total)} parameters, 1/{ratio:.1f} of its {count(top.params_total)}; "
                  f"{count(cheap.macs)} multiply-adds against {count(top.macs)}.", ""]
    seeds = [p for p in points if p.seed]
    if seeds:
        best_seed = max(seeds, key=lambda p: p.accuracy)
        rivals = [p for p in points if p.accuracy >= best_seed.accuracy]
        cheapest = min(rivals, key=lambda p: (p.macs, p.number))
        lines += [f"**The seven**: {sum(1 for p in seeds if p.number in members)} of {len(seeds)} are on a front. "
                  f"The best of them, {md(best_seed.label)}, reaches {pct(best_seed.accuracy)} with "
                  f"{count(best_seed.params_total)} parameters and {count(best_seed.macs)} multiply-adds; "
                  + (f"{md(cheapest.label)} is at least as accurate ({pct(cheapest.accuracy)}) with "
                     f"{count(cheapest.params_total)} parameters and {count(cheapest.macs)} multiply-adds "
                     f"(1/{best_seed.macs / cheapest.macs:.1f} of its multiply-adds, "
                     f"1/{best_seed.params_total / cheapest.params_total:.1f} of its parameters)."
                     if cheapest.number != best_seed.number else "no trial is as accurate for less."), ""]
    return lines
