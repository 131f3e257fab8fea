//! `--on-battery pause|run`: whether the machine runs on battery, from
//! `/sys/class/power_supply`.
//!
//! It does when a system battery (`type` `Battery`, not a device's such as a mouse's, whose
//! `scope` is `Device`) is `Discharging`, or when the machine has mains supplies (`type`
//! `Mains`) and none is `online`. A machine with no supplies listed (a desktop, a server, a
//! container) never runs on battery.

use std::path::Path;

/// What the worker does while the machine runs on battery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnBattery {
    /// Pause until mains power is back.
    #[default]
    Pause,
    /// Run as on mains power.
    Run,
}

/// Whether the machine runs on battery, as the supplies under `dir` say.
pub fn on_battery(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut mains = false;
    let mut mains_online = false;
    for entry in entries.flatten() {
        let supply = entry.path();
        let read = |name: &str| {
            std::fs::read_to_string(supply.join(name))
                .map(|text| text.trim().to_owned())
                .unwrap_or_default()
        };
        match read("type").as_str() {
            "Battery" if read("scope") != "Device" && read("status") == "Discharging" => {
                return true;
            }
            "Mains" => {
                mains = true;
                mains_online |= read("online") == "1";
            }
            _ => {}
        }
    }
    mains && !mains_online
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supply(dir: &Path, name: &str, files: &[(&str, &str)]) {
        let path = dir.join(name);
        std::fs::create_dir_all(&path).unwrap();
        for (file, text) in files {
            std::fs::write(path.join(file), format!("{text}\n")).unwrap();
        }
    }

    #[test]
    fn a_discharging_battery_or_mains_offline_is_on_battery() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!on_battery(dir.path()), "no supplies: a desktop");
        assert!(!on_battery(&dir.path().join("missing")));
        supply(dir.path(), "AC", &[("type", "Mains"), ("online", "1")]);
        supply(
            dir.path(),
            "BAT0",
            &[("type", "Battery"), ("status", "Charging")],
        );
        assert!(!on_battery(dir.path()));
        supply(dir.path(), "AC", &[("type", "Mains"), ("online", "0")]);
        assert!(on_battery(dir.path()), "unplugged");
        supply(dir.path(), "AC", &[("type", "Mains"), ("online", "1")]);
        supply(
            dir.path(),
            "BAT0",
            &[("type", "Battery"), ("status", "Discharging")],
        );
        assert!(
            on_battery(dir.path()),
            "discharging, whatever the mains says"
        );
    }

    #[test]
    fn a_devices_battery_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        supply(
            dir.path(),
            "hid-mouse-battery",
            &[
                ("type", "Battery"),
                ("scope", "Device"),
                ("status", "Discharging"),
            ],
        );
        supply(
            dir.path(),
            "ucsi-source-psy",
            &[("type", "USB"), ("online", "0")],
        );
        assert!(!on_battery(dir.path()));
    }
}
