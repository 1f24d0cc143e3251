"""The real-XGBoost peer of coffer-gbdt's interop and quality tests.

Usage: xgb_peer.py JOB.json. Matrices travel as raw little-endian float32, row-major; the job
names the files and shapes. Commands:
  dataset  write a train/test split of an sklearn dataset
  train    train xgboost (tree_method=hist), save the JSON model, predict, evaluate
  predict  load a JSON model with xgboost.Booster(model_file=...) and predict
  cuts     xgboost's histogram cut values for a matrix
"""
import json
import sys

import numpy as np
import xgboost as xgb


def load(path, n_rows, n_cols=None):
    a = np.fromfile(path, dtype="<f4")
    return a.reshape(n_rows, n_cols) if n_cols is not None else a.reshape(n_rows)


def save(path, a):
    np.ascontiguousarray(a, dtype="<f4").tofile(path)


def dataset(job):
    from sklearn.datasets import load_breast_cancer, load_diabetes, make_classification
    from sklearn.model_selection import train_test_split

    name = job["name"]
    if name == "classification":
        X, y = make_classification(
            n_samples=job["rows"], n_features=job["features"], n_informative=job["features"] // 2,
            n_redundant=2, flip_y=0.05, class_sep=0.7, random_state=job["seed"])
    elif name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
    elif name == "diabetes":
        X, y = load_diabetes(return_X_y=True, scaled=False)
    else:
        raise SystemExit(f"unknown dataset {name}")
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=job["seed"])
    out = job["out"]
    for n, a in [("X_train", Xtr), ("y_train", ytr), ("X_test", Xte), ("y_test", yte)]:
        save(f"{out}/{n}.f32", a)
    with open(f"{out}/meta.json", "w") as f:
        json.dump({"n_train": len(Xtr), "n_test": len(Xte), "n_cols": X.shape[1]}, f)


def dmatrix(spec, with_label=True):
    X = load(spec["X"], spec["n_rows"], spec["n_cols"])
    kw = {}
    if with_label and spec.get("y"):
        kw["label"] = load(spec["y"], spec["n_rows"])
    if spec.get("w"):
        kw["weight"] = load(spec["w"], spec["n_rows"])
    if spec.get("feature_names"):
        kw["feature_names"] = spec["feature_names"]
    return xgb.DMatrix(X, missing=np.nan, **kw)


def metric(name, pred, y):
    from sklearn.metrics import log_loss, roc_auc_score
    if name == "auc":
        return float(roc_auc_score(y, pred))
    if name == "rmse":
        return float(np.sqrt(np.mean((pred.astype(np.float64) - y) ** 2)))
    if name == "logloss":
        return float(log_loss(y, pred))
    raise SystemExit(f"unknown metric {name}")


def train(job):
    dtrain = dmatrix(job["train"])
    params = dict(job["params"])
    params["tree_method"] = "hist"
    evals, evals_result = [], {}
    if "valid" in job:
        evals = [(dmatrix(job["valid"]), "valid")]
    booster = xgb.train(params, dtrain, num_boost_round=job["rounds"], evals=evals,
                        evals_result=evals_result, verbose_eval=False,
                        early_stopping_rounds=job.get("early_stopping_rounds"))
    booster.save_model(job["model_out"])
    result = {"evals_result": evals_result, "num_boosted_rounds": booster.num_boosted_rounds()}
    if job.get("early_stopping_rounds"):
        result["best_iteration"] = booster.best_iteration
    for p in job.get("predict", []):
        d = dmatrix(p, with_label=False)
        save(p["out"], booster.predict(d, output_margin=p.get("margin", False)))
    if "eval" in job:
        e = job["eval"]
        d = dmatrix(e)
        result["metric"] = metric(e["metric"], booster.predict(d), load(e["y"], e["n_rows"]))
    result["importance"] = {
        kind: booster.get_score(importance_type=kind) for kind in ["weight", "gain", "cover"]}
    with open(job["result_out"], "w") as f:
        json.dump(result, f)


def predict(job):
    booster = xgb.Booster(model_file=job["model"])
    d = dmatrix(job, with_label=False)
    save(job["out"], booster.predict(d, output_margin=job.get("margin", False)))


def cuts(job):
    d = dmatrix(job)
    xgb.train({"tree_method": "hist", "max_bin": job["max_bin"]}, d, num_boost_round=1)
    ptr, values = d.get_quantile_cut()
    with open(job["out"], "w") as f:
        json.dump({"ptr": [int(p) for p in ptr], "values": [float(v) for v in values]}, f)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        job = json.load(f)
    {"dataset": dataset, "train": train, "predict": predict, "cuts": cuts}[job["cmd"]](job)
