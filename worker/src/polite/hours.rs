//! `--hours 22-07`: the worker runs only between these local times, pausing outside them.

use std::fmt;
use std::str::FromStr;

/// A daily window of local time, `START-END`, which may wrap midnight (`22-07` runs from
/// 22:00 to 07:00 the next morning). Each end is `H` or `H:MM`; `END` may be 24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    /// Minutes after midnight the window opens.
    start: u16,
    /// Minutes after midnight it closes (exclusive); may be below `start` (it wraps).
    end: u16,
}

/// Why an `--hours` value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    /// Not `START-END`.
    #[error("expected START-END in local 24-hour time, such as 22-07 or 08:30-17:00")]
    Shape,
    /// An end that is not `H` or `H:MM` within the day.
    #[error("{0:?} is not a time of day: give H or H:MM, hours 0 to 24, minutes 0 to 59")]
    Time(String),
    /// Both ends the same.
    #[error("the window {0} is empty; leave --hours out to run at all hours")]
    Empty(String),
}

impl Hours {
    /// Whether `minute` minutes after midnight (0 to 1439) fall in the window.
    pub fn contains(self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }

    /// Whether the local time now falls in the window.
    pub fn now(self) -> bool {
        self.contains(local_minute_of_day())
    }
}

impl FromStr for Hours {
    type Err = HoursError;

    fn from_str(text: &str) -> Result<Self, HoursError> {
        let (start, end) = text.trim().split_once('-').ok_or(HoursError::Shape)?;
        let (start, end) = (minute_of(start)?, minute_of(end)?);
        if start == end {
            return Err(HoursError::Empty(text.trim().to_owned()));
        }
        // 24-... is midnight; ...-24 and 0-24 (all day) keep 24:00 as the end.
        Ok(Self {
            start: start % (24 * 60),
            end,
        })
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// `H` or `H:MM` as minutes after midnight (24:00 allowed).
fn minute_of(text: &str) -> Result<u16, HoursError> {
    let bad = || HoursError::Time(text.trim().to_owned());
    let (hours, minutes) = match text.trim().split_once(':') {
        Some((hours, minutes)) if minutes.len() == 2 => (hours, minutes),
        Some(_) => return Err(bad()),
        None => (text.trim(), "0"),
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(hours) || !digits(minutes) {
        return Err(bad());
    }
    let (hours, minutes): (u16, u16) = (
        hours.parse().map_err(|_| bad())?,
        minutes.parse().map_err(|_| bad())?,
    );
    if minutes > 59 || hours > 24 || (hours == 24 && minutes > 0) {
        return Err(bad());
    }
    Ok(hours * 60 + minutes)
}

/// Minutes after local midnight now (the system's time zone, `TZ` or /etc/localtime).
#[cfg(unix)]
fn local_minute_of_day() -> u16 {
    // SAFETY: `time(NULL)` only returns the time; `localtime_r` writes into `tm`, which we own.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return 0;
        }
        u16::try_from(tm.tm_hour * 60 + tm.tm_min).unwrap_or(0)
    }
}

/// Minutes after midnight now, in UTC (no time zone database here).
#[cfg(not(unix))]
fn local_minute_of_day() -> u16 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    ((secs / 60) % (24 * 60)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: u16, minute: u16) -> u16 {
        hour * 60 + minute
    }

    #[test]
    fn a_window_may_wrap_midnight() {
        let night: Hours = "22-07".parse().unwrap();
        assert_eq!(night.to_string(), "22:00-07:00");
        for (time, inside) in [
            (at(21, 59), false),
            (at(22, 0), true),
            (at(23, 59), true),
            (at(0, 0), true),
            (at(6, 59), true),
            (at(7, 0), false),
            (at(12, 0), false),
        ] {
            assert_eq!(night.contains(time), inside, "{time}");
        }
    }

    #[test]
    fn a_window_within_a_day_and_minutes() {
        let office: Hours = "08:30-17:00".parse().unwrap();
        assert!(!office.contains(at(8, 29)));
        assert!(office.contains(at(8, 30)));
        assert!(office.contains(at(16, 59)));
        assert!(!office.contains(at(17, 0)));
        let evening: Hours = "18-24".parse().unwrap();
        assert!(evening.contains(at(23, 59)));
        assert!(!evening.contains(at(0, 0)));
        let early: Hours = " 0-6 ".parse().unwrap();
        assert!(early.contains(at(0, 0)) && !early.contains(at(6, 0)));
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        assert_eq!("22".parse::<Hours>(), Err(HoursError::Shape));
        assert_eq!("25-07".parse::<Hours>(), Err(HoursError::Time("25".into())));
        assert_eq!(
            "22-7:5".parse::<Hours>(),
            Err(HoursError::Time("7:5".into()))
        );
        assert_eq!(
            "22:60-07".parse::<Hours>(),
            Err(HoursError::Time("22:60".into()))
        );
        assert_eq!(
            "ten-six".parse::<Hours>(),
            Err(HoursError::Time("ten".into()))
        );
        assert_eq!("-1-5".parse::<Hours>(), Err(HoursError::Time("".into())));
        assert_eq!("7-7".parse::<Hours>(), Err(HoursError::Empty("7-7".into())));
        let all_day: Hours = "0-24".parse().unwrap();
        assert!(all_day.contains(at(0, 0)) && all_day.contains(at(23, 59)));
        let message = "22".parse::<Hours>().unwrap_err().to_string();
        assert!(message.contains("such as 22-07"), "{message}");
    }
}
