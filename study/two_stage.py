"""`--mode two-stage`, stage 2: fine-tune the best heads of the cached search with the base unfrozen.

Stage 1 is the study itself, heads searched on cached base features. Stage 2 takes its top K
trials; for each it trains the head again on the cached features (cheap), puts it on a fresh
base whose top N blocks are unfrozen, and fine-tunes the whole model on the images at a lower
learning rate, BatchNorm kept in inference mode (Keras transfer-learning guide). Each is a
trial of the study `<name>-stage2` in the same storage, with `stage1_trial` naming its origin.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from study.analysis import top_trials
from study.data import make_dataset
from study.model import build_head, with_base
from study.objective import Objective
from study.progress import format_trial_line
from study.training import fit_best_epoch

STAGE2_SUFFIX = "-stage2"
STAGE1_ATTR = "stage1_trial"


class FineTuneObjective(Objective):
    """Stage 2 trial: the head retrained on features, then the whole model fine-tuned on images."""

    def __init__(self, *args, unfreeze_blocks: int, lr_factor: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.unfreeze_blocks = unfreeze_blocks
        self.lr_factor = lr_factor

    def _build(self, params: dict):
        import keras

        head = build_head(feature_shape=self.features.feature_shape, n_classes=len(self.data.class_names),
                          head_depth=params["head_depth"], dense_units=params["dense_units"],
                          dropout=params["dropout"], learning_rate=params["learning_rate"])
        x, y, batch = self.features.x, self.features.y, self.train.batch_size
        head_fit = fit_best_epoch(head, make_dataset(x["train"], y["train"], batch, shuffle=True, seed=self.train.seed),
                                  make_dataset(x["val"], y["val"], batch), self.train.epochs)
        self._head_val_accuracy = head_fit.best_val_accuracy
        keras.utils.set_random_seed(self.train.seed)
        return with_base(head, image_size=self.train.image_size, alpha=self.train.alpha,
                         weights=self.resolved_weights, learning_rate=params["learning_rate"] * self.lr_factor,
                         unfreeze_blocks=self.unfreeze_blocks)

    def _datasets(self, number: int):
        x, y, batch = self.data.x, self.data.y, self.train.batch_size
        return (make_dataset(x["train"], y["train"], batch, shuffle=True, augment=self.train.augment,
                             seed=self.train.seed + number),
                make_dataset(x["val"], y["val"], batch), make_dataset(x["test"], y["test"], batch))

    def __call__(self, trial: optuna.Trial) -> float:
        value = super().__call__(trial)
        trial.set_user_attr("head_only_val_accuracy", self._head_val_accuracy)
        return value

    def _save_best(self, model, trial, value, test_accuracy, params) -> None:
        features, self.features = self.features, None  # already a full model: save as it is
        try:
            super()._save_best(model, trial, value, test_accuracy, params)
        finally:
            self.features = features


def run_stage_two(study: optuna.Study, storage, objective_args: dict, top: int, unfreeze_blocks: int,
                  lr_factor: float) -> optuna.Study:
    """Fine-tune the top `top` stage-1 trials not yet fine-tuned; returns the stage-2 study."""
    name = study.study_name + STAGE2_SUFFIX
    stage2 = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                 pruner=optuna.pruners.NopPruner())
    stage2.set_metric_names(["validation accuracy"])
    done = {t.user_attrs.get(STAGE1_ATTR) for t in stage2.get_trials(deepcopy=False) if t.state != TrialState.FAIL}
    chosen = [t for t in top_trials(study.get_trials(deepcopy=False), top, include_seeds=True) if t.number not in done]
    for trial in chosen:
        stage2.enqueue_trial(dict(trial.params), user_attrs={STAGE1_ATTR: trial.number, "stage1_value": trial.value,
                                                             "unfreeze_blocks": unfreeze_blocks,
                                                             "learning_rate_factor": lr_factor})
    waiting = len(stage2.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    print(f"stage 2: fine-tuning {waiting} head(s) with the top {unfreeze_blocks} base blocks unfrozen, "
          f"learning rate x {lr_factor}, into study '{name}'", flush=True)
    if waiting:
        objective = FineTuneObjective(**objective_args, unfreeze_blocks=unfreeze_blocks, lr_factor=lr_factor)
        stage2.optimize(objective, n_trials=waiting, catch=(Exception,), gc_after_trial=True,
                        callbacks=[lambda s, t: print(format_trial_line(s, t), flush=True)])
    return stage2

