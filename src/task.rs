//! The task: modular addition `(a + b) mod p` over all p² pairs, and its seeded train/test split.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A set of examples `[a, b, =] -> (a + b) mod p`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Examples {
    pub a: Vec<u32>,
    pub b: Vec<u32>,
    pub labels: Vec<u32>,
}

impl Examples {
    pub fn from_pairs(p: usize, pairs: &[u32]) -> Self {
        let mut ex = Examples::default();
        for &pair in pairs {
            let (a, b) = (pair / p as u32, pair % p as u32);
            ex.a.push(a);
            ex.b.push(b);
            ex.labels.push((a + b) % p as u32);
        }
        ex
    }

    /// All p² pairs, a-major.
    pub fn all(p: usize) -> Self {
        let pairs: Vec<u32> = (0..(p * p) as u32).collect();
        Examples::from_pairs(p, &pairs)
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Token sequences `[a, b, =]`.
    pub fn tokens(&self, p: usize) -> Vec<[usize; 3]> {
        (0..self.len())
            .map(|i| [self.a[i] as usize, self.b[i] as usize, p])
            .collect()
    }
}

/// The train/test split: a pure function of (p, frac, data seed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub p: usize,
    pub frac: f64,
    pub data_seed: u64,
    /// Pair indices `a * p + b`.
    pub train: Vec<u32>,
    pub test: Vec<u32>,
}

impl Split {
    /// Shuffles all pairs with a seeded ChaCha8 and puts the first `round(frac p²)` in train.
    pub fn new(p: usize, frac: f64, data_seed: u64) -> Self {
        let mut pairs: Vec<u32> = (0..(p * p) as u32).collect();
        pairs.shuffle(&mut ChaCha8Rng::seed_from_u64(data_seed));
        let n_train = Split::train_size(p, frac);
        let test = pairs.split_off(n_train);
        Split {
            p,
            frac,
            data_seed,
            train: pairs,
            test,
        }
    }

    pub fn train_size(p: usize, frac: f64) -> usize {
        (frac * (p * p) as f64).round() as usize
    }

    /// How many pairs the test set of [`Split::new`] has.
    pub fn test_size(p: usize, frac: f64) -> usize {
        p * p - Split::train_size(p, frac)
    }

    pub fn train_examples(&self) -> Examples {
        Examples::from_pairs(self.p, &self.train)
    }

    pub fn test_examples(&self) -> Examples {
        Examples::from_pairs(self.p, &self.test)
    }

    /// How many test pairs `(a, b)` have a transpose `(b, a)` that is not in train (a = b
    /// included: its transpose is itself): the pairs only a general algorithm gets right.
    pub fn transpose_unseen_test_pairs(&self) -> usize {
        let p = self.p as u32;
        let mut in_train = vec![false; self.p * self.p];
        for &i in &self.train {
            in_train[i as usize] = true;
        }
        self.test
            .iter()
            .filter(|&&i| !in_train[((i % p) * p + i / p) as usize])
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_a_seeded_partition() {
        let s = Split::new(13, 0.3, 598);
        assert_eq!(s.train.len(), 51);
        let mut all: Vec<u32> = s.train.iter().chain(&s.test).copied().collect();
        all.sort();
        assert_eq!(all, (0..169).collect::<Vec<_>>());
        assert_eq!(s, Split::new(13, 0.3, 598));
        assert_ne!(s.train, Split::new(13, 0.3, 599).train);
    }

    #[test]
    fn labels_are_sums_mod_p() {
        let ex = Examples::all(5);
        assert_eq!(ex.len(), 25);
        assert_eq!((ex.a[7], ex.b[7], ex.labels[7]), (1, 2, 3));
        assert_eq!((ex.a[24], ex.b[24], ex.labels[24]), (4, 4, 3));
    }
}
