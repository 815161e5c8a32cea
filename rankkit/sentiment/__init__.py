"""Code-mixed (Banglish) review sentiment built on rankkit's encoders, training loop and mining core."""

from rankkit.lazy import lazy_attributes
from rankkit.sentiment.config import METHODS, AdaptConfig, ReviewColumns, SentimentConfig
from rankkit.sentiment.data import LabelSpec, Reviews, rating_to_label, read_reviews
from rankkit.sentiment.normalize import normalize_review

__getattr__ = lazy_attributes(
    __name__,
    {
        "expected_calibration_error": "rankkit.sentiment.metrics",
        "plot_curves": "rankkit.sentiment.metrics",
        "sentiment_metrics": "rankkit.sentiment.metrics",
        "TfidfSentiment": "rankkit.sentiment.model",
        "TransformerSentiment": "rankkit.sentiment.model",
        "load_sentiment_model": "rankkit.sentiment.model",
        "train_sentiment": "rankkit.sentiment.train",
    },
)
__all__ = [
    "AdaptConfig",
    "LabelSpec",
    "METHODS",
    "ReviewColumns",
    "Reviews",
    "SentimentConfig",
    "TfidfSentiment",
    "TransformerSentiment",
    "expected_calibration_error",
    "load_sentiment_model",
    "normalize_review",
    "plot_curves",
    "rating_to_label",
    "read_reviews",
    "sentiment_metrics",
    "train_sentiment",
]
