//! An inverted-file index (IVF) over the store's vectors, for stores too
//! large to scan whole on every query: the vectors are split into about √n
//! lists around k-means centroids, and a query scans only the lists of its
//! `probe` nearest centroids. Its recall against the exact scan is a
//! benchmark figure (`cargo bench -p aicockpit-embed --bench ivf_recall`).
//!
//! Built on its own thread from a snapshot of the store's vectors, started
//! by the first search that wants lists (the store answers by the exact scan
//! until they are ready); a vector added later joins its nearest list; a
//! vector dropped from the store is skipped when met; the store rebuilds the
//! lists, again in the background, once it has doubled since they were made.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::simd::dot;

/// k-means rounds when building (on a sample; each round is one pass).
const ROUNDS: usize = 8;
/// Vectors the centroids are learned from, at most.
const SAMPLE: usize = 50_000;

/// The lists and their centroids.
pub(crate) struct Ivf {
    dimension: usize,
    /// `lists × dimension`, unit length.
    centroids: Vec<f32>,
    lists: Vec<Vec<u64>>,
    /// Vectors when built: the store rebuilds when it has twice as many.
    pub(crate) built_from: usize,
}

impl Ivf {
    /// Learn about √n centroids from (a sample of) the vectors of `keys`
    /// and file every vector under its nearest. `vector` gives a key's
    /// vector (dequantized); the order of `keys` decides nothing. `None`
    /// when `cancelled` was set during the build.
    pub(crate) fn build(
        dimension: usize,
        mut keys: Vec<u64>,
        vector: &(dyn Fn(u64) -> Vec<f32> + Sync),
        cancelled: &AtomicBool,
    ) -> Option<Ivf> {
        let n = keys.len();
        let dimension = dimension.max(1);
        let count = ((n as f64).sqrt() as usize).clamp(1, 4096);
        // A deterministic sample: the vectors with the smallest hashes mixed.
        keys.sort_unstable_by_key(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let sample: Vec<Vec<f32>> = keys
            .iter()
            .take(SAMPLE.max(count))
            .map(|k| vector(*k))
            .collect();
        let mut centroids: Vec<f32> = sample
            .iter()
            .step_by((sample.len() / count).max(1))
            .take(count)
            .flat_map(|v| v.iter().copied())
            .collect();
        let count = centroids.len() / dimension;
        for _ in 0..ROUNDS {
            if cancelled.load(Ordering::Relaxed) {
                return None;
            }
            let mut sums = vec![0f32; count * dimension];
            let mut members = vec![0usize; count];
            let assigned: Vec<usize> = sample
                .par_iter()
                .map(|vector| nearest(&centroids, dimension, vector))
                .collect();
            for (vector, &nearest) in sample.iter().zip(&assigned) {
                members[nearest] += 1;
                for (sum, value) in sums[nearest * dimension..(nearest + 1) * dimension]
                    .iter_mut()
                    .zip(vector)
                {
                    *sum += value;
                }
            }
            for (list, &size) in members.iter().enumerate() {
                if size == 0 {
                    continue; // keeps its centroid
                }
                let centroid = &mut centroids[list * dimension..(list + 1) * dimension];
                centroid.copy_from_slice(&sums[list * dimension..(list + 1) * dimension]);
                normalize(centroid);
            }
        }
        drop(sample);
        if cancelled.load(Ordering::Relaxed) {
            return None;
        }
        let mut ivf = Ivf {
            dimension,
            centroids,
            lists: vec![Vec::new(); count],
            built_from: n,
        };
        let assigned: Vec<usize> = keys
            .par_iter()
            .map(|key| nearest(&ivf.centroids, dimension, &vector(*key)))
            .collect();
        for (key, list) in keys.into_iter().zip(assigned) {
            ivf.lists[list].push(key);
        }
        Some(ivf)
    }

    /// Every hash filed in some list.
    pub(crate) fn filed_keys(&self) -> HashSet<u64> {
        self.lists.iter().flatten().copied().collect()
    }

    /// File one vector under its nearest centroid.
    pub(crate) fn add(&mut self, hash: u64, vector: &[f32]) {
        let list = nearest(&self.centroids, self.dimension, vector);
        self.lists[list].push(hash);
    }

    /// The hashes filed under the `probe` centroids nearest `query`.
    pub(crate) fn candidates(&self, query: &[f32], probe: usize) -> impl Iterator<Item = u64> + '_ {
        let mut scored: Vec<(f32, usize)> = self
            .centroids
            .chunks_exact(self.dimension)
            .enumerate()
            .map(|(list, centroid)| (dot(query, centroid), list))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .take(probe.max(1))
            .flat_map(|(_, list)| self.lists[list].iter().copied())
    }

    /// Number of lists.
    pub(crate) fn list_count(&self) -> usize {
        self.lists.len()
    }

    /// Entries filed in all lists (vectors since removed included).
    pub(crate) fn filed(&self) -> usize {
        self.lists.iter().map(Vec::len).sum()
    }
}

fn nearest(centroids: &[f32], dimension: usize, vector: &[f32]) -> usize {
    centroids
        .chunks_exact(dimension)
        .enumerate()
        .map(|(list, centroid)| (dot(vector, centroid), list))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or(0, |(_, list)| list)
}

fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        for value in vector {
            *value /= norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn build(dimension: usize, vectors: &HashMap<u64, Vec<f32>>) -> Ivf {
        let keys = vectors.keys().copied().collect();
        Ivf::build(
            dimension,
            keys,
            &|k| vectors[&k].clone(),
            &AtomicBool::new(false),
        )
        .unwrap()
    }

    /// Unit vectors around a few directions, from a fixed generator.
    fn clustered(n: usize, dimension: usize) -> HashMap<u64, Vec<f32>> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let centers: Vec<Vec<f32>> = (0..20)
            .map(|_| (0..dimension).map(|_| next()).collect())
            .collect();
        (0..n as u64)
            .map(|i| {
                let center = &centers[i as usize % centers.len()];
                let mut v: Vec<f32> = center.iter().map(|c| c + 0.3 * next()).collect();
                normalize(&mut v);
                (i * 7919 + 1, v)
            })
            .collect()
    }

    #[test]
    fn every_vector_is_found_by_a_query_equal_to_it_probing_one_list() {
        let vectors = clustered(3000, 32);
        let ivf = build(32, &vectors);
        assert!(ivf.list_count() > 10, "{} lists", ivf.list_count());
        let filed: usize = ivf.lists.iter().map(Vec::len).sum();
        assert_eq!(filed, vectors.len(), "every vector is in one list");
        for (hash, vector) in vectors.iter().take(300) {
            assert!(
                ivf.candidates(vector, 1).any(|c| c == *hash),
                "a vector's own list is its nearest centroid's"
            );
        }
    }

    #[test]
    fn probing_every_list_is_the_exact_scan() {
        let vectors = clustered(500, 16);
        let ivf = build(16, &vectors);
        let mut all: Vec<u64> = ivf.candidates(&vectors[&1], usize::MAX).collect();
        all.sort_unstable();
        let mut expected: Vec<u64> = vectors.keys().copied().collect();
        expected.sort_unstable();
        assert_eq!(all, expected);
    }

    #[test]
    fn a_cancelled_build_gives_nothing() {
        let vectors = clustered(200, 8);
        let keys = vectors.keys().copied().collect();
        let cancelled = AtomicBool::new(true);
        assert!(Ivf::build(8, keys, &|k| vectors[&k].clone(), &cancelled).is_none());
    }
}
