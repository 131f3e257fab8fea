//! Replication: the answers several workers gave for one task, and the majority among them.
//!
//! Sandboxed execution is deterministic, so honest workers give bit-identical outputs and burn
//! the same fuel for the same task; two answers agree when both are equal. A group of
//! `quorum` agreeing answers is the canonical result, and whoever answered otherwise lied (or
//! is broken, which for the user is the same).

use dipla_protocol::RawJson;

use crate::types::WorkerId;

/// One worker's answer.
#[derive(Debug, Clone)]
pub(crate) struct Vote {
    pub(crate) worker: WorkerId,
    pub(crate) fuel: u64,
    pub(crate) output: Box<RawJson>,
    /// Whether it says the output meets the stage's goal (part of the answer: honest
    /// workers agree on it too).
    pub(crate) stop: bool,
}

/// The answers to one replicated task so far, and every worker it was given to.
#[derive(Debug, Default)]
pub(crate) struct Votes {
    pub(crate) answers: Vec<Vote>,
    /// Workers given the task (a replica never goes to the same worker twice).
    pub(crate) asked: Vec<WorkerId>,
}

/// What the answers so far decide.
#[derive(Debug)]
pub(crate) enum Decision {
    /// `agree` gave the canonical output; `disagree` gave something else.
    Agreed {
        output: Box<RawJson>,
        /// Whether the agreed answer meets the stage's goal.
        stop: bool,
        agree: Vec<WorkerId>,
        disagree: Vec<WorkerId>,
    },
    /// More answers are needed: at least `missing` more agreeing ones.
    Undecided { missing: u32 },
    /// `answers` answers in `groups` different groups and no more may be asked for.
    Split { answers: usize, groups: usize },
}

impl Votes {
    /// The decision for a task needing `quorum` agreeing answers, asking at most `max`.
    pub(crate) fn decide(&self, quorum: u32, max: usize) -> Decision {
        let mut groups: Vec<Vec<&Vote>> = Vec::new();
        for vote in &self.answers {
            match groups.iter_mut().find(|group| {
                group[0].fuel == vote.fuel
                    && group[0].stop == vote.stop
                    && group[0].output.get() == vote.output.get()
            }) {
                Some(group) => group.push(vote),
                None => groups.push(vec![vote]),
            }
        }
        let best = groups.iter().max_by_key(|group| group.len());
        let agreeing = best.map_or(0, Vec::len) as u32;
        if let Some(best) = best
            && agreeing >= quorum
        {
            let agree: Vec<WorkerId> = best.iter().map(|vote| vote.worker).collect();
            return Decision::Agreed {
                output: best[0].output.clone(),
                stop: best[0].stop,
                disagree: self
                    .answers
                    .iter()
                    .map(|vote| vote.worker)
                    .filter(|worker| !agree.contains(worker))
                    .collect(),
                agree,
            };
        }
        if self.answers.len() >= max {
            return Decision::Split {
                answers: self.answers.len(),
                groups: groups.len(),
            };
        }
        Decision::Undecided {
            missing: quorum - agreeing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn votes(answers: &[(WorkerId, &str)]) -> Votes {
        Votes {
            answers: answers
                .iter()
                .map(|&(worker, text)| Vote {
                    worker,
                    fuel: 10,
                    output: RawJson::from_string(text.to_owned()).unwrap(),
                    stop: false,
                })
                .collect(),
            asked: answers.iter().map(|&(worker, _)| worker).collect(),
        }
    }

    #[test]
    fn a_quorum_of_equal_answers_decides_and_names_the_dissenters() {
        let decision = votes(&[(1, "[2,3]"), (2, "[2,4]"), (3, "[2,3]")]).decide(2, 5);
        let Decision::Agreed {
            output,
            agree,
            disagree,
            ..
        } = decision
        else {
            panic!("{decision:?}")
        };
        assert_eq!(output.get(), "[2,3]");
        assert_eq!((agree, disagree), (vec![1, 3], vec![2]));
    }

    #[test]
    fn a_tie_asks_for_more_until_the_bound() {
        assert!(matches!(
            votes(&[(1, "1"), (2, "2")]).decide(2, 5),
            Decision::Undecided { missing: 1 }
        ));
        assert!(matches!(
            votes(&[(1, "1")]).decide(3, 5),
            Decision::Undecided { missing: 2 }
        ));
        assert!(matches!(
            votes(&[(1, "1"), (2, "2"), (3, "3")]).decide(2, 3),
            Decision::Split {
                answers: 3,
                groups: 3
            }
        ));
    }

    #[test]
    fn the_same_output_claiming_the_goal_is_a_different_answer() {
        let mut votes = votes(&[(1, "7"), (2, "7")]);
        votes.answers[1].stop = true;
        assert!(matches!(
            votes.decide(2, 5),
            Decision::Undecided { missing: 1 }
        ));
    }

    #[test]
    fn the_same_output_with_different_fuel_is_a_different_answer() {
        let mut votes = votes(&[(1, "7"), (2, "7")]);
        votes.answers[1].fuel = 11;
        assert!(matches!(
            votes.decide(2, 5),
            Decision::Undecided { missing: 1 }
        ));
    }
}
