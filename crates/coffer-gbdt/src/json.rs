//! XGBoost's JSON model format (`Booster.save_model("m.json")`, xgboost 3.x), both ways.
//!
//! Loading treats the file as attacker-controlled: every array length, child index, feature
//! index and number is checked, every tree must be a tree (no node reached twice), and nothing
//! this crate cannot evaluate exactly (categorical splits, vector leaves, `dart`, `gblinear`,
//! other objectives) is accepted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::booster::Booster;
use crate::error::{GbdtError, Result, malformed};
use crate::params::Objective;
use crate::tree::{Node, Tree};

/// Refuse absurd declared sizes before allocating for them.
const MAX_NODES: usize = 1 << 28;
const MAX_FEATURES: usize = 1 << 24;

#[derive(Serialize, Deserialize)]
struct ModelFile<G> {
    learner: Learner<G>,
    #[serde(default)]
    version: Vec<u32>,
}

/// `G` is `Value` when loading (the booster kind is checked first) and [`GbTree`] when saving,
/// so floats keep their shortest `f32` spelling.
#[derive(Serialize, Deserialize)]
struct Learner<G> {
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    feature_names: Vec<String>,
    #[serde(default)]
    feature_types: Vec<String>,
    gradient_booster: G,
    learner_model_param: LearnerModelParam,
    objective: Value,
}

#[derive(Serialize, Deserialize)]
struct LearnerModelParam {
    base_score: String,
    #[serde(default = "one")]
    boost_from_average: String,
    num_class: String,
    num_feature: String,
    #[serde(default = "one")]
    num_target: String,
}

fn one() -> String {
    "1".into()
}

#[derive(Serialize, Deserialize)]
struct GbTree {
    model: GbTreeModel,
    name: String,
}

#[derive(Serialize, Deserialize)]
struct GbTreeModel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cats: Option<Value>,
    gbtree_model_param: GbTreeModelParam,
    #[serde(default)]
    iteration_indptr: Option<Vec<i64>>,
    tree_info: Vec<i64>,
    trees: Vec<TreeJson>,
}

#[derive(Serialize, Deserialize)]
struct GbTreeModelParam {
    num_parallel_tree: String,
    num_trees: String,
}

/// `default_left` is an integer array in 3.x; accept booleans too.
#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(untagged)]
enum Flag {
    Int(i64),
    Bool(bool),
}

#[derive(Serialize, Deserialize)]
struct TreeJson {
    base_weights: Vec<f32>,
    #[serde(default)]
    categories: Vec<i64>,
    #[serde(default)]
    categories_nodes: Vec<i64>,
    #[serde(default)]
    categories_segments: Vec<i64>,
    #[serde(default)]
    categories_sizes: Vec<i64>,
    default_left: Vec<Flag>,
    id: i64,
    left_children: Vec<i64>,
    loss_changes: Vec<f32>,
    parents: Vec<i64>,
    right_children: Vec<i64>,
    split_conditions: Vec<f32>,
    split_indices: Vec<i64>,
    #[serde(default)]
    split_type: Vec<i64>,
    sum_hessian: Vec<f32>,
    tree_param: TreeParam,
}

#[derive(Serialize, Deserialize)]
struct TreeParam {
    #[serde(default = "zero")]
    num_deleted: String,
    num_feature: String,
    num_nodes: String,
    #[serde(default = "one")]
    size_leaf_vector: String,
}

fn zero() -> String {
    "0".into()
}

/// Formats floats as XGBoost does in `base_score` (`[5E-1]`).
fn vector_string(v: &[f32]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x:E}")).collect();
    format!("[{}]", items.join(","))
}

fn parse_usize(what: &str, s: &str) -> Result<usize> {
    s.trim()
        .parse::<usize>()
        .map_err(|_| malformed(format!("{what}: {s:?} is not a non-negative integer")))
}

/// Parses `"[5E-1]"`, `"[1E0,2E0]"` or the scalar `"0.5"`.
fn parse_base_score(s: &str) -> Result<Vec<f32>> {
    let t = s.trim();
    let inner = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t);
    inner
        .split(',')
        .map(|x| {
            let v: f32 = x
                .trim()
                .parse()
                .map_err(|_| malformed(format!("base_score {s:?} is not a number list")))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(malformed("base_score is not finite"))
            }
        })
        .collect()
}

impl Booster {
    /// Serialises to XGBoost's JSON model format.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string(&self.to_model_file()?)?)
    }

    fn to_model_file(&self) -> Result<ModelFile<GbTree>> {
        let nf = self.num_feature.to_string();
        let trees: Vec<TreeJson> = self
            .trees
            .iter()
            .enumerate()
            .map(|(i, t)| tree_to_json(i, t, &nf))
            .collect();
        let multi = self.objective == Objective::MultiSoftprob;
        let num_class = if multi { self.n_groups } else { 0 };
        let objective = match self.objective {
            Objective::MultiSoftprob => serde_json::json!({
                "name": self.objective.name(),
                "softmax_multiclass_param": {"num_class": num_class.to_string()},
            }),
            _ => serde_json::json!({
                "name": self.objective.name(),
                "reg_loss_param": {"scale_pos_weight": "1"},
            }),
        };
        let model = GbTree {
            name: "gbtree".into(),
            model: GbTreeModel {
                cats: Some(
                    serde_json::json!({"enc": [], "feature_segments": [], "sorted_idx": []}),
                ),
                gbtree_model_param: GbTreeModelParam {
                    num_parallel_tree: "1".into(),
                    num_trees: trees.len().to_string(),
                },
                iteration_indptr: Some(
                    self.iteration_indptr
                        .iter()
                        .map(|x| i64::try_from(*x).unwrap_or(i64::MAX))
                        .collect(),
                ),
                tree_info: self
                    .tree_info
                    .iter()
                    .map(|x| i64::try_from(*x).unwrap_or(i64::MAX))
                    .collect(),
                trees,
            },
        };
        let feature_types = if self.feature_names.is_empty() {
            Vec::new()
        } else {
            vec!["float".to_owned(); self.feature_names.len()]
        };
        Ok(ModelFile {
            learner: Learner {
                attributes: self.attributes.clone(),
                feature_names: self.feature_names.clone(),
                feature_types,
                gradient_booster: model,
                learner_model_param: LearnerModelParam {
                    base_score: vector_string(&self.base_score),
                    boost_from_average: "1".into(),
                    num_class: num_class.to_string(),
                    num_feature: nf,
                    num_target: "1".into(),
                },
                objective,
            },
            version: vec![3, 2, 0],
        })
    }

    /// Parses an XGBoost JSON model (numeric splits only).
    pub fn from_json(text: &str) -> Result<Self> {
        let file: ModelFile<Value> = serde_json::from_str(text)?;
        from_model_file(file)
    }

    /// Writes the JSON model to `path`.
    pub fn save_json(&self, path: &std::path::Path) -> Result<()> {
        std::fs::write(path, self.to_json()?)
            .map_err(|e| GbdtError::InvalidData(format!("writing {}: {e}", path.display())))
    }

    /// Reads a JSON model from `path`.
    pub fn load_json(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GbdtError::InvalidData(format!("reading {}: {e}", path.display())))?;
        Self::from_json(&text)
    }
}

fn tree_to_json(id: usize, t: &Tree, num_feature: &str) -> TreeJson {
    let n = t.nodes();
    let col = |f: &dyn Fn(&Node) -> f32| n.iter().map(f).collect::<Vec<f32>>();
    let icol = |f: &dyn Fn(&Node) -> i64| n.iter().map(f).collect::<Vec<i64>>();
    TreeJson {
        base_weights: col(&|x| x.base_weight),
        categories: Vec::new(),
        categories_nodes: Vec::new(),
        categories_segments: Vec::new(),
        categories_sizes: Vec::new(),
        default_left: n
            .iter()
            .map(|x| Flag::Int(i64::from(x.default_left)))
            .collect(),
        id: i64::try_from(id).unwrap_or(i64::MAX),
        left_children: icol(&|x| i64::from(x.left)),
        loss_changes: col(&|x| x.loss_change),
        parents: icol(&|x| i64::from(x.parent)),
        right_children: icol(&|x| i64::from(x.right)),
        split_conditions: col(&|x| x.cond),
        split_indices: icol(&|x| i64::from(x.feature)),
        split_type: vec![0; n.len()],
        sum_hessian: col(&|x| x.sum_hess),
        tree_param: TreeParam {
            num_deleted: "0".into(),
            num_feature: num_feature.to_owned(),
            num_nodes: n.len().to_string(),
            size_leaf_vector: "1".into(),
        },
    }
}

fn from_model_file(file: ModelFile<Value>) -> Result<Booster> {
    let l = file.learner;
    let objective_name = l
        .objective
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("objective.name missing"))?;
    let objective = Objective::from_name(objective_name)
        .ok_or_else(|| GbdtError::Unsupported(format!("objective {objective_name:?}")))?;
    let mp = &l.learner_model_param;
    let num_class = parse_usize("num_class", &mp.num_class)?;
    let num_feature = parse_usize("num_feature", &mp.num_feature)?;
    if num_feature > MAX_FEATURES {
        return Err(malformed("num_feature too large"));
    }
    if parse_usize("num_target", &mp.num_target)? > 1 {
        return Err(GbdtError::Unsupported("multi-target models".into()));
    }
    let n_groups = match objective {
        Objective::MultiSoftprob if (2..=1 << 16).contains(&num_class) => num_class,
        Objective::MultiSoftprob => return Err(malformed("multi:softprob needs num_class >= 2")),
        _ if num_class <= 1 => 1,
        _ => return Err(malformed("num_class > 1 for a single-output objective")),
    };
    let mut base_score = parse_base_score(&mp.base_score)?;
    if base_score.len() == 1 && n_groups > 1 {
        base_score = vec![base_score.first().copied().unwrap_or(0.5); n_groups];
    }
    if base_score.len() != n_groups {
        return Err(malformed(
            "base_score length differs from the output groups",
        ));
    }
    if objective == Objective::BinaryLogistic && base_score.iter().any(|b| !(*b > 0.0 && *b < 1.0))
    {
        return Err(malformed("binary:logistic base_score must be in (0, 1)"));
    }
    if !l.feature_names.is_empty() && l.feature_names.len() != num_feature {
        return Err(malformed("feature_names length differs from num_feature"));
    }
    let gb_name = l.gradient_booster.get("name").and_then(Value::as_str);
    if gb_name != Some("gbtree") {
        return Err(GbdtError::Unsupported(format!(
            "gradient booster {gb_name:?}"
        )));
    }
    let gb: GbTree = serde_json::from_value(l.gradient_booster)?;
    let model = gb.model;
    if let Some(cats) = &model.cats {
        let has_enc = cats
            .get("enc")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if has_enc {
            return Err(GbdtError::Unsupported("categorical features".into()));
        }
    }
    let trees = model
        .trees
        .iter()
        .map(|t| tree_from_json(t, num_feature))
        .collect::<Result<Vec<_>>>()?;
    if model.tree_info.len() != trees.len() {
        return Err(malformed(
            "tree_info length differs from the number of trees",
        ));
    }
    if parse_usize("num_trees", &model.gbtree_model_param.num_trees)? != trees.len() {
        return Err(malformed("num_trees differs from the number of trees"));
    }
    let tree_info = model
        .tree_info
        .iter()
        .map(|g| {
            usize::try_from(*g)
                .ok()
                .filter(|g| *g < n_groups)
                .ok_or_else(|| malformed(format!("tree_info entry {g} out of range")))
        })
        .collect::<Result<Vec<_>>>()?;
    let per_round = parse_usize(
        "num_parallel_tree",
        &model.gbtree_model_param.num_parallel_tree,
    )?
    .checked_mul(n_groups)
    .filter(|x| *x > 0)
    .ok_or_else(|| malformed("num_parallel_tree out of range"))?;
    let iteration_indptr = match model.iteration_indptr {
        Some(v) => check_indptr(&v, trees.len())?,
        None => (0..=trees.len().div_ceil(per_round))
            .map(|i| i.saturating_mul(per_round).min(trees.len()))
            .collect(),
    };
    Ok(Booster {
        objective,
        n_groups,
        num_feature,
        base_score,
        trees,
        tree_info,
        iteration_indptr,
        feature_names: l.feature_names,
        attributes: l.attributes,
    })
}

fn check_indptr(v: &[i64], n_trees: usize) -> Result<Vec<usize>> {
    let out = v
        .iter()
        .map(|x| usize::try_from(*x).map_err(|_| malformed("negative iteration_indptr")))
        .collect::<Result<Vec<_>>>()?;
    let monotone = out.windows(2).all(|w| matches!(w, [a, b] if a <= b));
    if out.first() != Some(&0) || out.last() != Some(&n_trees) || !monotone {
        return Err(malformed(
            "iteration_indptr does not cover the trees in order",
        ));
    }
    Ok(out)
}

fn tree_from_json(t: &TreeJson, num_feature: usize) -> Result<Tree> {
    let n = parse_usize("num_nodes", &t.tree_param.num_nodes)?;
    if n == 0 || n > MAX_NODES {
        return Err(malformed(format!(
            "tree {}: num_nodes {n} out of range",
            t.id
        )));
    }
    let lens = [
        t.base_weights.len(),
        t.default_left.len(),
        t.left_children.len(),
        t.right_children.len(),
        t.loss_changes.len(),
        t.parents.len(),
        t.split_conditions.len(),
        t.split_indices.len(),
        t.sum_hessian.len(),
    ];
    if lens.iter().any(|l| *l != n) || !(t.split_type.is_empty() || t.split_type.len() == n) {
        return Err(malformed(format!(
            "tree {}: array lengths differ from num_nodes",
            t.id
        )));
    }
    if t.split_type.iter().any(|s| *s != 0) || !t.categories_nodes.is_empty() {
        return Err(GbdtError::Unsupported(format!(
            "tree {}: categorical splits are not supported",
            t.id
        )));
    }
    if !matches!(t.tree_param.size_leaf_vector.trim(), "0" | "1") {
        return Err(GbdtError::Unsupported("vector leaves".into()));
    }
    let child = |c: i64| -> Result<i32> {
        i32::try_from(c)
            .ok()
            .filter(|c| *c == -1 || usize::try_from(*c).is_ok_and(|c| c > 0 && c < n))
            .ok_or_else(|| malformed(format!("tree {}: child index {c} out of range", t.id)))
    };
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let get = |v: &[f32]| v.get(i).copied().unwrap_or(f32::NAN);
        let left = child(t.left_children.get(i).copied().unwrap_or(-2))?;
        let right = child(t.right_children.get(i).copied().unwrap_or(-2))?;
        let cond = get(&t.split_conditions);
        if (left == -1) != (right == -1) || (left != -1 && left == right) {
            return Err(malformed(format!(
                "tree {}: node {i} has bad children",
                t.id
            )));
        }
        if !cond.is_finite() {
            return Err(malformed(format!(
                "tree {}: node {i} value not finite",
                t.id
            )));
        }
        let raw_feature = t.split_indices.get(i).copied().unwrap_or(-1);
        let feature = if left == -1 {
            0
        } else {
            u32::try_from(raw_feature)
                .ok()
                .filter(|f| (*f as usize) < num_feature)
                .ok_or_else(|| {
                    malformed(format!("tree {}: feature {raw_feature} out of range", t.id))
                })?
        };
        let default_left = match t.default_left.get(i) {
            Some(Flag::Int(0) | Flag::Bool(false)) => false,
            Some(Flag::Int(1) | Flag::Bool(true)) => true,
            _ => return Err(malformed(format!("tree {}: bad default_left", t.id))),
        };
        let parent = t.parents.get(i).copied().unwrap_or(-1);
        nodes.push(Node {
            left,
            right,
            parent: i32::try_from(parent).unwrap_or(i32::MAX),
            feature,
            cond,
            default_left,
            base_weight: get(&t.base_weights),
            loss_change: get(&t.loss_changes),
            sum_hess: get(&t.sum_hessian),
        });
    }
    check_is_tree(&nodes, t.id)?;
    Ok(Tree { nodes })
}

/// Every node reachable from the root is reached exactly once: no cycles, no shared children.
fn check_is_tree(nodes: &[Node], id: i64) -> Result<()> {
    let mut seen = vec![false; nodes.len()];
    let mut stack = vec![0usize];
    while let Some(i) = stack.pop() {
        let slot = seen
            .get_mut(i)
            .ok_or_else(|| malformed("child out of range"))?;
        if *slot {
            return Err(malformed(format!("tree {id}: node {i} is reached twice")));
        }
        *slot = true;
        let node = nodes
            .get(i)
            .ok_or_else(|| malformed("child out of range"))?;
        if !node.is_leaf() {
            for c in [node.left, node.right] {
                stack.push(usize::try_from(c).map_err(|_| malformed("negative child"))?);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn base_score_forms() {
        assert_eq!(parse_base_score("[5E-1]").unwrap(), vec![0.5]);
        assert_eq!(parse_base_score("0.25").unwrap(), vec![0.25]);
        assert_eq!(parse_base_score("[1E0,-2.5E-1]").unwrap(), vec![1.0, -0.25]);
        assert!(parse_base_score("[nan]").is_err());
        assert!(parse_base_score("[").is_err());
        assert_eq!(vector_string(&[0.47, -1.0]), "[4.7E-1,-1E0]");
    }
}
