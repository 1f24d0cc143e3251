//! Histogram-based gradient-boosted decision trees, compatible with XGBoost's JSON model format.
#![forbid(unsafe_code)]
