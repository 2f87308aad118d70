"""`--mode two-stage`, stage 2: fine-tune the best heads of the cached search with the base unfrozen.

Stage 1 is the study itself, heads searched on cached base features. Stage 2 takes its top K
trials; for each (a `stage2` job of the same trial runtime, see `study.trial.job`) it trains
the head again on the cached features (cheap), puts it on a fresh
base whose top N blocks are unfrozen, and fine-tunes the whole model on the images at a lower
learning rate, BatchNorm kept in inference mode (Keras transfer-learning guide). Each is a
trial of the study `<name>-stage2` in the same storage, with `stage1_trial` naming its origin.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from study import interrupts
from study.search.objective import Objective
from study.search.progress import LiveTrialLine, format_trial_line
from study.store.record import STAGE2_SUFFIX, TrialKey, accuracy, top_trials


def run_stage_two(study: optuna.Study, storage, objective_args: dict, top: int, unfreeze_blocks: int,
                  lr_factor: float) -> optuna.Study:
    """Fine-tune the top `top` stage-1 trials not yet fine-tuned; returns the stage-2 study."""
    name = study.study_name + STAGE2_SUFFIX
    stage2 = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                 pruner=optuna.pruners.NopPruner())
    stage2.set_metric_names(["validation accuracy"])
    done = {t.user_attrs.get(TrialKey.STAGE1_TRIAL) for t in stage2.get_trials(deepcopy=False)
            if t.state != TrialState.FAIL}
    chosen = [t for t in top_trials(study.get_trials(deepcopy=False), top, include_seeds=True) if t.number not in done]
    for trial in chosen:
        stage2.enqueue_trial(dict(trial.params), user_attrs={TrialKey.STAGE1_TRIAL: trial.number,
                                                             TrialKey.STAGE1_VALUE: accuracy(trial),
                                                             "unfreeze_blocks": unfreeze_blocks,
                                                             TrialKey.LEARNING_RATE_FACTOR: lr_factor})
    waiting = len(stage2.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    print(f"stage 2: fine-tuning {waiting} head(s) with the top {unfreeze_blocks} base blocks unfrozen, "
          f"learning rate x {lr_factor}, into study '{name}'", flush=True)
    if waiting:
        objective = Objective(**objective_args, job_options={"kind": "stage2", "unfreeze_blocks": unfreeze_blocks,
                                                             "lr_factor": lr_factor}, live_line=LiveTrialLine())
        with interrupts.deferred():
            stage2.optimize(objective, n_trials=waiting, catch=(Exception,), gc_after_trial=True,
                            callbacks=[lambda s, t: print(format_trial_line(s, t), flush=True),
                                       lambda s, t: interrupts.raise_if_requested()])
    return stage2
