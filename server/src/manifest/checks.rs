//! How a stage's outputs are checked: replicated to several workers who must agree (a
//! `quorum` of them), or each given to a `#[verifier]` task.

use dipla_core::Replicate;
use dipla_protocol::ModuleHash;

use super::Fault;
use super::modules::Guests;

/// `stages[i].replicate`: a fraction of tasks (`1` for all), or `"adaptive"`.
pub(super) fn replicate(i: usize, replicate: Option<&toml::Value>) -> Result<Replicate, Fault> {
    Ok(match replicate {
        None => Replicate::Off,
        Some(toml::Value::String(text)) if text == "adaptive" => Replicate::Adaptive,
        Some(toml::Value::Float(fraction)) if *fraction > 0.0 && *fraction <= 1.0 => {
            Replicate::Fraction(*fraction)
        }
        Some(toml::Value::Integer(1)) => Replicate::Fraction(1.0),
        Some(other) => {
            return Err(Fault::new(
                format!("stages[{i}].replicate"),
                format!(
                    "{other} should be a fraction of tasks above 0 and at most 1 (such as 0.1), or \"adaptive\""
                ),
            ));
        }
    })
}

/// `stages[i].quorum`: how many agreeing workers a replicated task needs, 2 to 9 (2 unless
/// given).
pub(super) fn quorum(i: usize, quorum: Option<u32>) -> Result<u32, Fault> {
    let quorum = quorum.unwrap_or(2);
    if !(2..=9).contains(&quorum) {
        return Err(Fault::new(
            format!("stages[{i}].quorum"),
            format!("{quorum} agreeing workers: give 2 to 9"),
        ));
    }
    Ok(quorum)
}

/// `stages[i].verify`: a `#[verifier]` task, as `module.verifier`, found in `guests`.
pub(super) fn verify(
    i: usize,
    verify: Option<&str>,
    guests: &Guests<'_>,
) -> Result<Option<(ModuleHash, String)>, Fault> {
    let Some(name) = verify else {
        return Ok(None);
    };
    let key = format!("stages[{i}].verify");
    let Some((module_name, export)) = name.split_once('.') else {
        return Err(Fault::new(
            key,
            format!("{name:?} should be \"module.verifier\", such as \"factor.check\""),
        ));
    };
    let Some((hash, guest)) = guests.get(module_name) else {
        return Err(Fault::new(
            key,
            format!("no module named {module_name:?} in [modules]"),
        ));
    };
    let info = guest
        .check_task(export)
        .map_err(|e| Fault::new(key.clone(), format!("module {module_name}: {e}")))?;
    if !info.verifier {
        return Err(Fault::new(
            key,
            format!(
                "{info} is not a #[verifier]: a verifier is fn(input: &In, output: &Out) -> bool"
            ),
        ));
    }
    Ok(Some((*hash, export.to_owned())))
}
