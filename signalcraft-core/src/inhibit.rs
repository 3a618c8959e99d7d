//! Inhibit rules (Alertmanager semantics): while an alert matching the *source* matchers
//! fires, alerts matching the *target* matchers are muted if they have the same values
//! for every `equal` label (absent counts as empty). An alert never inhibits itself.
//!
//! The [`Inhibitor`] keeps, per rule, the firing source alerts indexed by a hash of
//! their `equal` label values, so a check is one hash lookup per rule.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::model::{Fingerprint, LabelView};
use crate::routing::matcher::{Matcher, MatcherSpec, compile_all, matches_all};

/// An inhibit rule as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    /// Matchers a firing alert must satisfy to inhibit.
    pub source_matchers: Vec<MatcherSpec>,
    /// Matchers an alert must satisfy to be inhibited.
    pub target_matchers: Vec<MatcherSpec>,
    /// Labels whose values must be equal in source and target.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    source: Vec<Matcher>,
    target: Vec<Matcher>,
    equal: Vec<String>,
}

impl InhibitRuleConfig {
    /// Compiles; errors name `path.source_matchers[i]` etc.
    pub fn compile(&self, path: &str) -> Result<InhibitRule, CoreError> {
        if self.source_matchers.is_empty() {
            return Err(CoreError::config(
                format!("{path}.source_matchers"),
                "must not be empty",
            ));
        }
        if self.target_matchers.is_empty() {
            return Err(CoreError::config(
                format!("{path}.target_matchers"),
                "must not be empty",
            ));
        }
        Ok(InhibitRule {
            source: compile_all(&self.source_matchers, &format!("{path}.source_matchers"))?,
            target: compile_all(&self.target_matchers, &format!("{path}.target_matchers"))?,
            equal: self.equal.clone(),
        })
    }
}

fn equal_hash<L: LabelView + ?Sized>(equal: &[String], labels: &L) -> u64 {
    let pairs = equal
        .iter()
        .map(|n| (n.as_str(), labels.label(n).unwrap_or("")));
    Fingerprint::of_label_pairs(pairs).0
}

/// Tracks firing source alerts and answers "is this alert inhibited?".
#[derive(Debug, Clone, Default)]
pub struct Inhibitor {
    rules: Vec<InhibitRule>,
    /// Per rule: equal-hash → firing source fingerprints.
    sources: Vec<HashMap<u64, Vec<Fingerprint>>>,
}

impl Inhibitor {
    /// An inhibitor for these rules, with no source alerts yet.
    pub fn new(rules: Vec<InhibitRule>) -> Self {
        let sources = vec![HashMap::new(); rules.len()];
        Inhibitor { rules, sources }
    }

    /// `true` when there are no rules (lets the hot path skip work).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Records that an alert fires (`firing = true`) or stopped firing.
    pub fn observe<L: LabelView + ?Sized>(&mut self, fp: Fingerprint, labels: &L, firing: bool) {
        for (rule, map) in self.rules.iter().zip(self.sources.iter_mut()) {
            if !matches_all(&rule.source, labels) {
                continue;
            }
            let h = equal_hash(&rule.equal, labels);
            let v = map.entry(h).or_default();
            let pos = v.iter().position(|x| *x == fp);
            match (firing, pos) {
                (true, None) => v.push(fp),
                (false, Some(i)) => {
                    v.swap_remove(i);
                    if v.is_empty() {
                        map.remove(&h);
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether the alert `fp` with `labels` is inhibited by some other firing alert.
    pub fn is_inhibited<L: LabelView + ?Sized>(&self, fp: Fingerprint, labels: &L) -> bool {
        self.rules
            .iter()
            .zip(self.sources.iter())
            .any(|(rule, map)| {
                matches_all(&rule.target, labels)
                    && map
                        .get(&equal_hash(&rule.equal, labels))
                        .is_some_and(|v| v.iter().any(|s| *s != fp))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn labels(p: &[(&str, &str)]) -> Labels {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn inhibitor() -> Inhibitor {
        let cfg: InhibitRuleConfig = serde_json::from_value(serde_json::json!({
            "source_matchers": ["severity=critical"],
            "target_matchers": ["severity=warning"],
            "equal": ["cluster"]
        }))
        .unwrap();
        Inhibitor::new(vec![cfg.compile("inhibit_rules[0]").unwrap()])
    }

    #[test]
    fn source_mutes_target_with_equal_labels() {
        let mut inh = inhibitor();
        let crit = labels(&[("severity", "critical"), ("cluster", "a")]);
        let warn_a = labels(&[("severity", "warning"), ("cluster", "a")]);
        let warn_b = labels(&[("severity", "warning"), ("cluster", "b")]);
        let (fc, fa, fb) = (
            Fingerprint::of_labels(&crit),
            Fingerprint::of_labels(&warn_a),
            Fingerprint::of_labels(&warn_b),
        );
        assert!(!inh.is_inhibited(fa, &warn_a));
        inh.observe(fc, &crit, true);
        assert!(inh.is_inhibited(fa, &warn_a));
        assert!(!inh.is_inhibited(fb, &warn_b), "different cluster");
        assert!(!inh.is_inhibited(fc, &crit), "source is not a target");
        inh.observe(fc, &crit, false);
        assert!(!inh.is_inhibited(fa, &warn_a));
    }

    #[test]
    fn an_alert_does_not_inhibit_itself() {
        let cfg: InhibitRuleConfig = serde_json::from_value(serde_json::json!({
            "source_matchers": ["alertname=Down"], "target_matchers": ["alertname=Down"], "equal": []
        }))
        .unwrap();
        let mut inh = Inhibitor::new(vec![cfg.compile("r").unwrap()]);
        let l = labels(&[("alertname", "Down"), ("i", "1")]);
        let fp = Fingerprint::of_labels(&l);
        inh.observe(fp, &l, true);
        assert!(!inh.is_inhibited(fp, &l));
        let l2 = labels(&[("alertname", "Down"), ("i", "2")]);
        assert!(inh.is_inhibited(Fingerprint::of_labels(&l2), &l2));
    }

    #[test]
    fn bad_rule_names_path() {
        let cfg: InhibitRuleConfig = serde_json::from_value(serde_json::json!({
            "source_matchers": ["a=b"], "target_matchers": ["c!~\"[\""]
        }))
        .unwrap();
        let e = cfg.compile("inhibit_rules[1]").unwrap_err().to_string();
        assert!(e.contains("inhibit_rules[1].target_matchers[0]"), "{e}");
    }
}
