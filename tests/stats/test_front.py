"""The front of accuracy against cost, its halvings and the cheapest model near the best, from given points."""

import optuna
from optuna.trial import TrialState, create_trial

from study.stats.front import CostPoint, cheapest_within, cost_points, front_indices, halvings, pareto_front


def point(number, acc, macs, size=None, params=None):
    return CostPoint(number, f"trial {number}", acc, 0, params or macs, params or macs, macs,
                     size if size is not None else macs, 1.0, {})


def test_front_keeps_only_undominated_pairs_by_ascending_cost():
    pairs = [(0.90, 100), (0.80, 10), (0.85, 50), (0.84, 60), (0.90, 120), (0.70, 10), (0.95, 400)]
    # (0.84, 60) is beaten by (0.85, 50); (0.90, 120) by (0.90, 100); (0.70, 10) by (0.80, 10)
    assert front_indices(pairs) == [1, 2, 0, 6]


def test_front_of_duplicates_keeps_the_first_and_of_nothing_is_empty():
    assert front_indices([(0.5, 1), (0.5, 1)]) == [0]
    assert front_indices([]) == []


def test_front_depends_on_the_cost():
    points = [point(0, 0.9, macs=100, size=10), point(1, 0.8, macs=10, size=100)]
    assert [p.number for p in pareto_front(points, "macs")] == [1, 0]
    assert [p.number for p in pareto_front(points, "model_bytes")] == [0]


def test_halvings_give_the_best_model_at_each_fraction_of_the_top_cost():
    front = [point(0, 0.70, 10), point(1, 0.85, 30), point(2, 0.89, 60), point(3, 0.90, 128)]
    steps = halvings(front, "macs")
    assert [(h.fraction, h.point.number) for h in steps] == [(0.5, 2), (0.25, 1), (0.125, 0)]  # none at <= 8
    assert abs(steps[0].lost - 0.01) < 1e-9 and abs(steps[1].lost - 0.05) < 1e-9
    assert halvings([point(0, 0.9, 10)], "macs") == []


def test_cheapest_within_a_margin_of_the_best():
    points = [point(0, 0.90, 1000), point(1, 0.895, 80), point(2, 0.889, 5), point(3, 0.7, 1)]
    assert cheapest_within(points, 0.01, "params_total").number == 1
    assert cheapest_within(points, 0.02, "params_total").number == 2
    assert cheapest_within([], 0.01, "macs") is None


def test_cost_points_take_completed_trials_with_every_cost():
    costs = {"params_base": 1, "params_head": 2, "params_total": 3, "macs": 4, "model_bytes": 5, "latency_ms": 0.5}
    dist = {"head_depth": optuna.distributions.IntDistribution(0, 3)}
    trials = [
        create_trial(values=[0.8, 3.0], params={"head_depth": 1}, distributions=dist,
                     user_attrs={**costs, "seed_name": "mn_resultset1", "pooling": "flatten"}),
        create_trial(values=[0.9, 3.0], params={"head_depth": 2}, distributions=dist, user_attrs={"macs": 4}),
        create_trial(state=TrialState.PRUNED, params={"head_depth": 2}, distributions=dist, user_attrs=costs),
    ]
    points = cost_points(trials)
    assert len(points) == 1
    assert points[0].label == "mn_resultset1" and points[0].accuracy == 0.8 and points[0].macs == 4
    assert points[0].params == {"pooling": "flatten", "head_depth": 1}


def cost_trial(number, acc, macs, size, params, seed=None):
    attrs = {"params_base": 200_000, "params_head": params - 200_000, "params_total": params, "macs": macs,
             "model_bytes": size, "latency_ms": 2.0, "pooling": "avg", "image_size": 128, "head_depth": 0,
             "dense_units": 8}
    if seed:
        attrs["seed_name"] = seed
    trial = create_trial(value=acc, user_attrs=attrs)
    trial.number = number
    return trial


def test_cost_section_tables_the_front_and_gives_the_int8_numbers(tmp_path):
    from study.report.cost_section import cost_section
    from study.store.record import export_key

    trials = [cost_trial(0, 0.60, 50_000_000, 300 << 20, 80_000_000, seed="mn_resultset3"),
              cost_trial(1, 0.595, 20_000_000, 4 << 20, 900_000),
              cost_trial(2, 0.50, 8_000_000, 1 << 20, 220_000),
              cost_trial(3, 0.40, 30_000_000, 8 << 20, 2_000_000)]  # beaten by trial 1 on both costs
    attrs = {"device": "device: CPU (2 cores)", "exports": {
        export_key(0, "tflite", "int8"): {"bytes": 80 << 20, "accuracy": 0.55, "keras_accuracy": 0.57},
        export_key(0, "tflite", "none"): {"bytes": 320 << 20, "accuracy": 0.57, "keras_accuracy": 0.57}}}
    text = "\n".join(cost_section(trials, attrs, tmp_path / "figures", tmp_path, "food"))
    assert (tmp_path / "figures" / "cost_front.png").is_file()
    rows = [line for line in text.splitlines() if line.startswith(("| mn", "| trial"))]
    assert [row.split(" | ")[0] for row in rows] == ["| mn\\_resultset3", "| trial 1", "| trial 2"]
    assert "80 M (200 k + 79.8 M) | 50 M | 300 MiB | 2.0 ms | 80 MiB, 55.00% | multiply-adds and model size |" in rows[0]
    assert "| 2.0 ms | - | multiply-adds and model size |" in rows[1]
    assert ("80 MiB against 300 MiB as `.keras` (3.8 times smaller, and 320 MiB as float32 TFLite (4.0 times)); "
            "test accuracy 55.00% measured with the TFLite interpreter, against 57.00% for the Keras model "
            "(-2.00 points)") in text
    assert ("multiply-adds (from mn\\_resultset3, 60.00% at 50 M): 1/2: 59.50% (trial 1, 20 M, -0.50 points); "
            "1/4: 50.00% (trial 2, 8 M, -10.00 points).") in text
    assert ("model size (from mn\\_resultset3, 60.00% at 300 MiB): 1/2 to 1/64: 59.50% (trial 1, 4 MiB, -0.50 points); "
            "1/128 to 1/256: 50.00% (trial 2, 1 MiB, -10.00 points).") in text
    assert ("**Within 1 point of the best**: trial 1 (avg pool, 128 px, no hidden layer) reaches 59.50% against "
            "the best's 60.00% (mn\\_resultset3) with 900 k parameters, 1/88.9 of its 80 M") in text
    assert "**The seven**: 1 of 1 are on a front." in text


def test_cost_section_without_exports_names_the_command_with_its_storage(tmp_path):
    from study.report.cost_section import cost_section

    trials = [cost_trial(4, 0.6, 10, 10, 300_000)]
    text = "\n".join(cost_section(trials, {}, tmp_path / "figures", tmp_path, "food", "sqlite:////data/s.db"))
    assert ("`python -m study export-model --study-name food --storage 'sqlite:////data/s.db' --trial 4 --format "
            "tflite --quantize int8 --out best.tflite` measures it") in text
