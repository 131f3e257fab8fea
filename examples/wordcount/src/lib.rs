//! Word count, the original Dipla's map/reduce example: each task counts the words of one
//! chunk of a text, a reduce merges the counts, and a last task picks the most frequent words
//! that are not stop words.

use std::collections::BTreeMap;

use dipla_guest::task;

/// Words too common to be interesting.
pub const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "had", "has", "have",
    "he", "her", "his", "i", "if", "in", "into", "is", "it", "its", "no", "not", "of", "on", "or",
    "she", "so", "that", "the", "their", "them", "then", "there", "they", "this", "to", "was",
    "we", "were", "what", "when", "which", "who", "will", "with", "would", "you",
];

/// How often each word occurs in `chunk` (lowercase; letters and apostrophes).
#[task]
pub fn count(chunk: String) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for word in chunk
        .split(|c: char| !(c.is_alphabetic() || c == '\''))
        .map(|word| word.trim_matches('\'').to_lowercase())
        .filter(|word| !word.is_empty())
    {
        *counts.entry(word).or_insert(0) += 1;
    }
    counts
}

/// Adds two sets of counts (the reducer).
#[task]
pub fn merge(mut a: BTreeMap<String, u64>, b: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    for (word, n) in b {
        *a.entry(word).or_insert(0) += n;
    }
    a
}

/// The `n` most frequent words that are not stop words, most frequent first (ties by word).
#[task]
pub fn top(counts: BTreeMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut words: Vec<(String, u64)> = counts
        .into_iter()
        .filter(|(word, _)| !STOP_WORDS.contains(&word.as_str()))
        .collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    words.truncate(n);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_merge_and_rank() {
        let a = count("The cat and the hat. The cat's hat!".into());
        assert_eq!(a["the"], 3);
        assert_eq!(a["cat's"], 1);
        let both = merge(a, count("hat hat".into()));
        assert_eq!(top(both, 2), [("hat".to_owned(), 4), ("cat".to_owned(), 1)]);
    }
}
