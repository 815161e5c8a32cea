"""Code-mixed (Banglish) review sentiment built on rankkit's encoders, training loop and mining core."""

from rankkit.sentiment.data import LabelSpec, Reviews, rating_to_label, read_reviews
from rankkit.sentiment.metrics import expected_calibration_error, plot_curves, sentiment_metrics
from rankkit.sentiment.model import TfidfSentiment, TransformerSentiment, load_sentiment_model
from rankkit.sentiment.normalize import normalize_review
from rankkit.sentiment.train import METHODS, SentimentConfig, train_sentiment

__all__ = ["LabelSpec", "METHODS", "Reviews", "SentimentConfig", "TfidfSentiment", "TransformerSentiment",
           "expected_calibration_error", "load_sentiment_model", "normalize_review", "plot_curves",
           "rating_to_label", "read_reviews", "sentiment_metrics", "train_sentiment"]
