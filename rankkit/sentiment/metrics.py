"""Binary sentiment metrics on scikit-learn, plus expected calibration error and the plots.

AUPRC's chance level is the positive-class prior (a random scorer's average precision), so the
prior is reported beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn import metrics as skm

from rankkit.errors import RankkitError
from rankkit.sentiment.data import LABEL_NAMES


def expected_calibration_error(labels: Sequence[int], positive_probability: Sequence[float], bins: int = 10) -> float:
    """ECE (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017): the predicted
    class's confidence in `bins` equal-width bins over [0, 1]; the bins' |accuracy -
    mean confidence| averaged with weights by the share of examples in each bin."""
    y = np.asarray(labels)
    p = np.asarray(positive_probability, dtype=np.float64)
    predicted = (p >= 0.5).astype(int)
    confidence = np.where(predicted == 1, p, 1 - p)
    correct = (predicted == y).astype(float)
    # bin i holds confidences in (i/bins, (i+1)/bins]; a confidence of exactly 0 goes to bin 0
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def sentiment_metrics(labels: Sequence[int], positive_probability: Sequence[float]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, AUROC, AUPRC with the positive
    prior, the confusion matrix (rows: true negative, positive; columns: predicted) and ECE.
    The predicted label is positive when P(positive) >= 0.5."""
    y = np.asarray(labels)
    p = np.asarray(positive_probability, dtype=np.float64)
    if len(y) == 0 or len(y) != len(p):
        raise RankkitError(
            f"metrics need as many probabilities as labels, and at least one "
            f"(got {len(y)} labels, {len(p)} probabilities). Fix: evaluate on a labelled file"
        )
    predicted = (p >= 0.5).astype(int)
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, predicted, labels=[0, 1], zero_division=0)
    both_classes = len(set(y.tolist())) == 2
    return {
        "count": int(len(y)),
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "macro_f1": float(skm.f1_score(y, predicted, average="macro", labels=[0, 1], zero_division=0)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(LABEL_NAMES)
        },
        "auroc": float(skm.roc_auc_score(y, p)) if both_classes else None,
        "auprc": float(skm.average_precision_score(y, p)) if both_classes else None,
        "positive_prior": float(y.mean()),
        "confusion_matrix": skm.confusion_matrix(y, predicted, labels=[0, 1]).tolist(),
        "ece": expected_calibration_error(y, p),
    }


def format_metrics(measured: dict) -> str:
    """A few readable lines of sentiment_metrics' result."""

    def number(value: float | None) -> str:
        return "n/a (one class only)" if value is None else f"{value:.4f}"

    lines = [
        f"reviews {measured['count']}  accuracy {measured['accuracy']:.4f}  macro-F1 {measured['macro_f1']:.4f}",
        f"AUROC {number(measured['auroc'])}  AUPRC {number(measured['auprc'])} "
        f"(positive prior {measured['positive_prior']:.4f}, AUPRC's chance level)  ECE {measured['ece']:.4f}",
    ]
    for name, values in measured["per_class"].items():
        lines.append(
            f"{name:>8}: precision {values['precision']:.4f}  recall {values['recall']:.4f}  "
            f"F1 {values['f1']:.4f}  support {values['support']}"
        )
    (tn, fp), (fn, tp) = measured["confusion_matrix"]
    lines.append(f"confusion (rows true, columns predicted; negative, positive): [[{tn}, {fp}], [{fn}, {tp}]]")
    return "\n".join(lines)


def model_name(folder: str | Path) -> str:
    """How plots and reports name a sentiment model folder: its method (tfidf, contrastive, ...)
    and, for a transformer, its base encoder, e.g. 'contrastive (all-MiniLM-L6-v2)'."""
    from rankkit.sentiment.model import META_FILE, sentiment_model_folder

    meta = json.loads((sentiment_model_folder(folder) / META_FILE).read_text())
    method = str(meta.get("method") or meta.get("kind") or Path(folder).name)
    base = meta.get("base_model")
    if not base:
        return method
    return f"{method} ({'all-MiniLM-L6-v2' if base == 'default' else Path(str(base)).name})"


def plot_curves(
    labels: Sequence[int],
    positive_probability: Sequence[float],
    folder: str | Path,
    bins: int = 10,
    name: str = "model",
) -> list[Path]:
    """roc.png, pr.png and reliability.png in `folder` (scikit-learn's displays on matplotlib),
    each titled and labelled with `name`, the model's (see model_name)."""
    try:
        import matplotlib
    except ImportError:
        raise RankkitError("plots need matplotlib. Fix: `pip install matplotlib`, or leave out --plots") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    y, p = np.asarray(labels), np.asarray(positive_probability)
    written = []
    plots = (
        (
            "roc.png",
            "ROC curve",
            lambda ax: skm.RocCurveDisplay.from_predictions(y, p, ax=ax, name=name, plot_chance_level=True),
        ),
        (
            "pr.png",
            "precision-recall curve",
            lambda ax: skm.PrecisionRecallDisplay.from_predictions(y, p, ax=ax, name=name, plot_chance_level=True),
        ),
        (
            "reliability.png",
            "reliability",
            lambda ax: CalibrationDisplay.from_predictions(y, p, n_bins=bins, ax=ax, name=name),
        ),
    )
    for file_name, what, draw in plots:
        figure, axis = plt.subplots(figsize=(4.5, 4.5))
        draw(axis)
        axis.set_title(f"{name}: {what}", fontsize=10)
        figure.tight_layout()
        path = folder / file_name
        tmp = folder / f".{file_name}.tmp.png"
        figure.savefig(tmp, dpi=100)
        plt.close(figure)
        tmp.replace(path)
        written.append(path)
    return written
