use dipla_protocol::RawJson;

/// A stage's inputs: one JSON value per task, in order.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inputs {
    /// The integers `start..end`, generated on demand (a range of a billion costs nothing).
    Range {
        /// The first integer.
        start: u64,
        /// One past the last integer.
        end: u64,
    },
    /// Explicit values (from the manifest or a JSON Lines file).
    Values(Vec<Box<RawJson>>),
}

impl Inputs {
    /// How many tasks.
    pub fn len(&self) -> u64 {
        match self {
            Self::Range { start, end } => end.saturating_sub(*start),
            Self::Values(values) => values.len() as u64,
        }
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The JSON input of task `index`.
    ///
    /// # Panics
    /// When `index` is out of range (a bug in the caller).
    pub fn get(&self, index: u64) -> Box<RawJson> {
        match self {
            Self::Range { start, end } => {
                assert!(index < end - start, "input {index} out of range");
                let text = (start + index).to_string();
                RawJson::from_string(text).expect("an integer is valid JSON")
            }
            Self::Values(values) => values[index as usize].clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_lazy_and_end_exclusive() {
        let inputs = Inputs::Range {
            start: 10,
            end: 10_000_000_000,
        };
        assert_eq!(inputs.len(), 9_999_999_990);
        assert_eq!(inputs.get(0).get(), "10");
        assert_eq!(inputs.get(9_999_999_989).get(), "9999999999");
        assert!(Inputs::Range { start: 5, end: 5 }.is_empty());
    }
}
