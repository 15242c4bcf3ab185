//! Weighted reciprocal-rank fusion of the text (BM25) and dense rankings.
//!
//! Only each list's top `depth` takes part. Over deep lists, equal weights
//! let BM25's long tail of weak matches outvote what only the dense list
//! found, so queries that share no word with the code lose their answers;
//! shallow lists with BM25 weighted lower keep them (see docs/benchmarks.md).

use std::collections::HashMap;
use std::hash::Hash;

/// Which retriever found a hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Retriever {
    Text,
    Semantic,
}

/// Fusion settings (from `[search]` in the config).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fusion {
    /// How many of each list's best take part.
    pub depth: usize,
    /// The rank offset `k` of `weight / (k + rank)`.
    pub k: f32,
    pub text_weight: f32,
    pub semantic_weight: f32,
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion {
            depth: 20,
            k: 60.0,
            text_weight: 0.5,
            semantic_weight: 1.0,
        }
    }
}

/// One fused result.
#[derive(Clone, Debug, PartialEq)]
pub struct Fused<K> {
    pub key: K,
    pub score: f32,
    /// One-based ranks in each list, where the key was in its top `depth`.
    pub text_rank: Option<usize>,
    pub semantic_rank: Option<usize>,
}

impl<K> Fused<K> {
    pub fn retrievers(&self) -> Vec<Retriever> {
        let mut found = Vec::new();
        if self.text_rank.is_some() {
            found.push(Retriever::Text);
        }
        if self.semantic_rank.is_some() {
            found.push(Retriever::Semantic);
        }
        found
    }
}

/// Fuse two rankings (best first; a key repeated in one list counts at its
/// best rank). Ties go to the key with the better single rank, then to the
/// dense list, then to the order of first appearance, so results are stable.
pub fn fuse<K: Clone + Eq + Hash>(text: &[K], semantic: &[K], fusion: &Fusion) -> Vec<Fused<K>> {
    let mut order: Vec<K> = Vec::new();
    let mut found: HashMap<K, Fused<K>> = HashMap::new();
    let mut add = |key: &K, rank: usize, semantic_list: bool| {
        let entry = found.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            Fused {
                key: key.clone(),
                score: 0.0,
                text_rank: None,
                semantic_rank: None,
            }
        });
        let (slot, weight) = if semantic_list {
            (&mut entry.semantic_rank, fusion.semantic_weight)
        } else {
            (&mut entry.text_rank, fusion.text_weight)
        };
        if slot.is_none() {
            *slot = Some(rank);
            entry.score += weight / (fusion.k + rank as f32);
        }
    };
    for (position, key) in semantic.iter().take(fusion.depth).enumerate() {
        add(key, position + 1, true);
    }
    for (position, key) in text.iter().take(fusion.depth).enumerate() {
        add(key, position + 1, false);
    }
    let mut fused: Vec<(usize, Fused<K>)> = order
        .iter()
        .enumerate()
        .filter_map(|(position, key)| found.remove(key).map(|f| (position, f)))
        .collect();
    fused.sort_by(|(pa, a), (pb, b)| {
        let best = |f: &Fused<K>| {
            f.text_rank
                .unwrap_or(usize::MAX)
                .min(f.semantic_rank.unwrap_or(usize::MAX))
        };
        b.score
            .total_cmp(&a.score)
            .then_with(|| best(a).cmp(&best(b)))
            .then_with(|| b.semantic_rank.is_some().cmp(&a.semantic_rank.is_some()))
            .then_with(|| pa.cmp(pb))
    });
    fused.into_iter().map(|(_, f)| f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(fused: &[Fused<&'static str>]) -> Vec<&'static str> {
        fused.iter().map(|f| f.key).collect()
    }

    /// (text list, dense list, fusion, expected order)
    type Case = (
        &'static [&'static str],
        &'static [&'static str],
        Fusion,
        &'static [&'static str],
    );

    #[test]
    fn rankings_fuse_as_the_table_says() {
        let equal = Fusion {
            depth: 100,
            k: 60.0,
            text_weight: 1.0,
            semantic_weight: 1.0,
        };
        let cases: Vec<Case> = vec![
            // Found by both beats found by one.
            (&["a", "b"], &["b", "c"], equal, &["b", "a", "c"]),
            // Equal weights and equal ranks: the dense list breaks the tie.
            (&["a"], &["c"], equal, &["c", "a"]),
            // BM25 weighted lower: the dense list's first beats the text list's first.
            (
                &["a", "b"],
                &["c", "d"],
                Fusion::default(),
                &["c", "d", "a", "b"],
            ),
            // Only the top `depth` of each list take part.
            (
                &["a", "b", "c"],
                &["x", "y", "z"],
                Fusion {
                    depth: 2,
                    ..Fusion::default()
                },
                &["x", "y", "a", "b"],
            ),
            // A key repeated in one list counts once, at its best rank.
            (&["a", "a", "b"], &[], equal, &["a", "b"]),
            // Nothing in, nothing out.
            (&[], &[], equal, &[]),
        ];
        for (text, semantic, fusion, expected) in cases {
            let fused = fuse(text, semantic, &fusion);
            assert_eq!(keys(&fused), expected, "text {text:?} dense {semantic:?}");
        }
    }

    #[test]
    fn scores_and_ranks_follow_the_formula() {
        let fused = fuse(&["a", "b"], &["b"], &Fusion::default());
        let b = &fused[0];
        assert_eq!(b.key, "b");
        assert_eq!((b.text_rank, b.semantic_rank), (Some(2), Some(1)));
        let expected = 0.5 / 62.0 + 1.0 / 61.0;
        assert!((b.score - expected).abs() < 1e-6, "{}", b.score);
        assert_eq!(b.retrievers(), [Retriever::Text, Retriever::Semantic]);
        assert_eq!(fused[1].retrievers(), [Retriever::Text]);
    }

    /// The trap: with equal weights over deep lists, a long BM25 tail pushes
    /// out what only the dense list found; shallow and weighted keeps it.
    #[test]
    fn what_only_the_dense_list_finds_survives_a_long_text_tail() {
        let text: Vec<String> = (0..200).map(|i| format!("noise{i}")).collect();
        let mut semantic: Vec<String> = vec!["answer".to_string()];
        semantic.extend(text.iter().skip(100).take(99).cloned());
        let deep_equal = Fusion {
            depth: 200,
            k: 60.0,
            text_weight: 1.0,
            semantic_weight: 1.0,
        };
        let deep = fuse(&text, &semantic, &deep_equal);
        let rank_deep = deep.iter().position(|f| f.key == "answer");
        assert!(rank_deep.is_some_and(|r| r >= 10), "{rank_deep:?}");
        let shallow = fuse(&text, &semantic, &Fusion::default());
        assert_eq!(shallow[0].key, "answer");
    }
}
