//! The worker's configuration file: a TOML file whose keys are the command's long option
//! names (`server = "ws://..."`, `cores = 2`, `pin = true`), read for whatever options the
//! command line and the environment leave unset.
//!
//! It is generic over a clap [`Command`]: an option added to the command is a key of the
//! file with no more code. [`parse`] parses the arguments once, asks clap where each value
//! came from ([`ArgMatches::value_source`]), and parses again with the file's values put in
//! front of the arguments for the options that were absent or at their default: flags and
//! environment win over the file, and every value goes through the option's own clap parser,
//! so its range and type checks apply.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use thiserror::Error;
use toml::{Spanned, Value};

/// Why a configuration file cannot be used. Each names the file, and the key and its line
/// when the problem is one key's.
#[derive(Debug, Error)]
pub enum ConfigFileError {
    /// The file cannot be read (a `--config` file that does not exist, say).
    #[error("cannot read the config file {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("the config file {} is not valid TOML: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the TOML parser says, with the line.
        message: String,
    },
    /// A key that is no option of the command.
    #[error("{}:{line}: unknown key `{key}`{}", path.display(), suggest(suggestion.as_deref()))]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key's line (from 1).
        line: usize,
        /// The key.
        key: String,
        /// The closest option name, when one is close.
        suggestion: Option<String>,
    },
    /// A key naming an option that a config file may not set: a hidden test-only option,
    /// or the option naming the config file itself.
    #[error("{}:{line}: `{key}` cannot be set in a config file ({why})", path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// The key's line (from 1).
        line: usize,
        /// The key.
        key: String,
        /// Why, in plain words.
        why: &'static str,
    },
    /// A value of the wrong TOML type, such as a string for a number.
    #[error("{}:{line}: `{key}` wants {expected}, not {found}", path.display())]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The key's line (from 1).
        line: usize,
        /// The key.
        key: String,
        /// The type it wants, in plain words.
        expected: &'static str,
        /// The type it has, in plain words.
        found: &'static str,
    },
    /// A value the option's parser refuses, such as one out of its range.
    #[error("{}:{line}: `{key}`: {message}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key's line (from 1).
        line: usize,
        /// The key.
        key: String,
        /// What clap says is wrong with it.
        message: String,
    },
    /// Two keys of the file set options that cannot be used together.
    #[error("{}:{line}: `{key}` cannot be used with `{other}` (line {other_line})", path.display())]
    Conflict {
        /// The file.
        path: PathBuf,
        /// The key's line (from 1).
        line: usize,
        /// The key.
        key: String,
        /// The other key.
        other: String,
        /// The other key's line.
        other_line: usize,
    },
}

fn suggest(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |name| format!("; did you mean `{name}`?"))
}

/// Why the arguments cannot be parsed.
#[derive(Debug, Error)]
pub enum ParseError {
    /// Clap refused the arguments, or `--help` or `--version` was asked for: print it as
    /// clap does ([`clap::Error::print`], [`clap::Error::exit_code`]).
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The configuration file cannot be used.
    #[error(transparent)]
    File(#[from] ConfigFileError),
}

/// The arguments, with the configuration file's values for what they leave unset.
#[derive(Debug)]
pub struct Parsed {
    /// What clap matched.
    pub matches: ArgMatches,
    /// The configuration file read, if one was.
    pub file: Option<PathBuf>,
}

/// Parses `args` (the program name first) with `command`, taking values for the options they
/// leave unset from a configuration file: the one named by the option whose id is
/// `config_arg` (on the command line or through its environment variable; it must exist),
/// else `default` when that file exists. A command line with a subcommand reads no file.
///
/// # Errors
/// Clap's errors as clap gives them (an unknown option, a missing required one once the file
/// is read, `--help`), and [`ConfigFileError`] for a file that cannot be read or parsed, or
/// whose keys or values do not fit the command.
pub fn parse(
    command: Command,
    args: impl IntoIterator<Item = impl Into<OsString>>,
    config_arg: &str,
    default: Option<&Path>,
) -> Result<Parsed, ParseError> {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut lenient = lenient(&command);
    lenient.build();
    // A first look, with nothing required: the file may give what is required.
    let first = match lenient.clone().try_get_matches_from(&args) {
        Ok(matches) => matches,
        // The real command gives the same error, worded with its own usage.
        Err(error) => {
            let error = command.try_get_matches_from(&args).err().unwrap_or(error);
            return Err(ParseError::Clap(error));
        }
    };
    if first.subcommand().is_some() {
        let matches = command.try_get_matches_from(&args)?;
        return Ok(Parsed {
            matches,
            file: None,
        });
    }
    let path = match first.get_one::<PathBuf>(config_arg) {
        Some(path) if explicit(&first, config_arg) => Some(path.clone()),
        _ => default.filter(|path| path.exists()).map(Path::to_owned),
    };
    let Some(path) = path else {
        let matches = command.try_get_matches_from(&args)?;
        return Ok(Parsed {
            matches,
            file: None,
        });
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigFileError::Unreadable {
        path: path.clone(),
        source,
    })?;
    let injected = from_file(&lenient, &first, config_arg, &path, &text)?;
    let mut all = Vec::with_capacity(args.len() + injected.len());
    all.extend(args.first().cloned());
    all.extend(injected);
    all.extend(args.into_iter().skip(1));
    let matches = command.try_get_matches_from(all)?;
    Ok(Parsed {
        matches,
        file: Some(path),
    })
}

/// `command` with nothing required, so that a first parse sees what the arguments give.
fn lenient(command: &Command) -> Command {
    let groups: Vec<String> = command
        .get_groups()
        .filter(|group| group.is_required_set())
        .map(|group| group.get_id().to_string())
        .collect();
    let args: Vec<String> = command
        .get_arguments()
        .filter(|arg| arg.is_required_set())
        .map(|arg| arg.get_id().to_string())
        .collect();
    let mut lenient = command.clone();
    for id in groups {
        lenient = lenient.mut_group(id, |group| group.required(false));
    }
    for id in args {
        lenient = lenient.mut_arg(id, |arg| arg.required(false));
    }
    lenient
}

/// Whether the argument `id` was given on the command line or in the environment.
fn explicit(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// One key of the file that sets an option.
struct Entry<'a> {
    key: String,
    line: usize,
    arg: &'a Arg,
    tokens: Vec<OsString>,
}

/// The arguments that give the file's values (`--key=value`, `--flag`) for the options the
/// first parse left unset, each checked by the option's parser.
fn from_file(
    command: &Command,
    first: &ArgMatches,
    config_arg: &str,
    path: &Path,
    text: &str,
) -> Result<Vec<OsString>, ConfigFileError> {
    let table: BTreeMap<Spanned<String>, Spanned<Value>> =
        toml::from_str(text).map_err(|error| ConfigFileError::Syntax {
            path: path.to_owned(),
            message: error.to_string().trim_end().to_owned(),
        })?;
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let mut keys: Vec<_> = table.iter().collect();
    keys.sort_by_key(|(key, _)| key.span().start);
    let mut entries = Vec::new();
    for (key, value) in keys {
        let line = line_of(key.span().start);
        let key = key.get_ref().clone();
        let Some(arg) = settable(command).find(|arg| arg.get_long() == Some(key.as_str())) else {
            return Err(ConfigFileError::UnknownKey {
                suggestion: closest(&key, settable(command).filter_map(Arg::get_long)),
                path: path.to_owned(),
                line,
                key,
            });
        };
        let refused = |why| ConfigFileError::Refused {
            path: path.to_owned(),
            line,
            key: key.clone(),
            why,
        };
        if arg.get_id() == config_arg {
            return Err(refused("a config file cannot name another"));
        }
        if arg.is_hide_set() {
            return Err(refused("it is a hidden option, for tests only"));
        }
        let tokens = tokens(arg, &key, value.get_ref()).map_err(|(expected, found)| {
            ConfigFileError::WrongType {
                path: path.to_owned(),
                line,
                key: key.clone(),
                expected,
                found,
            }
        })?;
        check(command, &tokens).map_err(|message| ConfigFileError::BadValue {
            path: path.to_owned(),
            line,
            key: key.clone(),
            message,
        })?;
        entries.push(Entry {
            key,
            line,
            arg,
            tokens,
        });
    }
    for (i, entry) in entries.iter().enumerate() {
        for other in &entries[i + 1..] {
            if conflict(command, entry.arg, other.arg) {
                return Err(ConfigFileError::Conflict {
                    path: path.to_owned(),
                    line: other.line,
                    key: other.key.clone(),
                    other: entry.key.clone(),
                    other_line: entry.line,
                });
            }
        }
    }
    // What the command line or the environment gives wins: the file neither overrides it
    // nor adds an option that cannot be used with it.
    let given: Vec<&Arg> = command
        .get_arguments()
        .filter(|arg| explicit(first, arg.get_id().as_str()))
        .collect();
    Ok(entries
        .into_iter()
        .filter(|entry| {
            !given
                .iter()
                .any(|arg| arg.get_id() == entry.arg.get_id() || conflict(command, arg, entry.arg))
        })
        .flat_map(|entry| entry.tokens)
        .collect())
}

/// The options a file may name: those with a long name, not clap's own `--help` and
/// `--version`.
fn settable(command: &Command) -> impl Iterator<Item = &Arg> {
    command.get_arguments().filter(|arg| {
        arg.get_long().is_some()
            && !matches!(
                arg.get_action(),
                ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
            )
    })
}

/// Whether `a` and `b` cannot be used together.
fn conflict(command: &Command, a: &Arg, b: &Arg) -> bool {
    let names = |x: &Arg, y: &Arg| {
        command
            .get_arg_conflicts_with(x)
            .iter()
            .any(|arg| arg.get_id() == y.get_id())
    };
    names(a, b) || names(b, a)
}

/// What a value of an option must be in the file.
#[derive(Clone, Copy)]
enum Kind {
    Flag,
    Integer,
    Number,
    Text,
}

impl Kind {
    fn of(arg: &Arg) -> Self {
        use std::any::TypeId;
        if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
            return Self::Flag;
        }
        let id = arg.get_value_parser().type_id();
        let integers = [
            TypeId::of::<u8>(),
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<usize>(),
            TypeId::of::<i8>(),
            TypeId::of::<i16>(),
            TypeId::of::<i32>(),
            TypeId::of::<i64>(),
            TypeId::of::<isize>(),
        ];
        if matches!(arg.get_action(), ArgAction::Count) || integers.iter().any(|t| id == *t) {
            Self::Integer
        } else if id == TypeId::of::<f64>() || id == TypeId::of::<f32>() {
            Self::Number
        } else {
            Self::Text
        }
    }

    fn wanted(self) -> &'static str {
        match self {
            Self::Flag => "true or false",
            Self::Integer => "a whole number",
            Self::Number => "a number",
            Self::Text => "a string (in quotes)",
        }
    }
}

/// TOML's name for the type of `value`, in plain words.
fn found(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "a whole number",
        Value::Float(_) => "a number with a fraction",
        Value::Boolean(_) => "true or false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

/// The arguments that give option `arg` the file's `value`; the wanted and found types when
/// it has the wrong one. `true` gives a flag; `false` leaves it off.
fn tokens(
    arg: &Arg,
    key: &str,
    value: &Value,
) -> Result<Vec<OsString>, (&'static str, &'static str)> {
    let kind = Kind::of(arg);
    let wrong = |value: &Value| (kind.wanted(), found(value));
    let one = |value: &Value| -> Result<OsString, (&'static str, &'static str)> {
        let text = match (kind, value) {
            (Kind::Text, Value::String(text)) => text.clone(),
            (Kind::Integer | Kind::Number, Value::Integer(number)) => number.to_string(),
            (Kind::Number, Value::Float(number)) => number.to_string(),
            _ => return Err(wrong(value)),
        };
        Ok(format!("--{key}={text}").into())
    };
    match (kind, value) {
        (Kind::Flag, Value::Boolean(true)) => Ok(vec![format!("--{key}").into()]),
        (Kind::Flag, Value::Boolean(false)) => Ok(Vec::new()),
        (Kind::Flag, _) => Err(wrong(value)),
        (_, Value::Array(values)) if matches!(arg.get_action(), ArgAction::Append) => {
            values.iter().map(one).collect()
        }
        _ => one(value).map(|token| vec![token]),
    }
}

/// Runs `tokens` through their option's parser: what it says when it refuses them.
fn check(command: &Command, tokens: &[OsString]) -> Result<(), String> {
    use clap::error::ErrorKind;
    let name = command.get_name().to_owned();
    let args = std::iter::once(OsString::from(name)).chain(tokens.iter().cloned());
    match command.clone().try_get_matches_from(args) {
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::InvalidUtf8
            ) =>
        {
            let text = error.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            Err(first.strip_prefix("error: ").unwrap_or(first).to_owned())
        }
        // Other errors (a missing required option, a conflict with the environment) are the
        // whole parse's to report.
        _ => Ok(()),
    }
}

/// The name among `names` closest to `key`, if one is close enough to be a likely typo.
fn closest<'a>(key: &str, names: impl Iterator<Item = &'a str>) -> Option<String> {
    names
        .map(|name| (distance(key, name), name))
        .filter(|(distance, name)| *distance <= (name.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name.to_owned())
}

/// The Levenshtein distance between `a` and `b`, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use clap::{Parser, value_parser};

    use super::*;

    /// A command like the worker's: a required group, defaults, a range, a flag, a hidden
    /// option, a conflict, and an option whose environment variable is always set.
    #[derive(Parser, Debug)]
    #[command(name = "worker", group = clap::ArgGroup::new("join").required(true).args(["server", "directory"]))]
    struct Cli {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        server: Option<String>,
        #[arg(long, conflicts_with = "server")]
        directory: Option<String>,
        #[arg(long)]
        cores: Option<usize>,
        #[arg(long, default_value_t = 1024)]
        max_memory_mb: usize,
        #[arg(long, default_value_t = 64, value_parser = value_parser!(u32).range(1..=4096))]
        max_module_mb: u32,
        #[arg(long)]
        pin: bool,
        #[arg(long)]
        no_bench: bool,
        #[arg(long, hide = true, default_value_t = 1)]
        throttle: u32,
        /// Set from `PATH`, which every test's environment has.
        #[arg(long, env = "PATH")]
        search: Option<String>,
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    fn parse_with(text: &str, args: &[&str]) -> Result<Cli, ParseError> {
        use clap::{CommandFactory, FromArgMatches};
        let file = file(text);
        let mut all = vec!["worker", "--config", file.path().to_str().unwrap()];
        all.extend(args);
        let parsed = parse(Cli::command(), all, "config", None)?;
        assert_eq!(parsed.file.as_deref(), Some(file.path()));
        Ok(Cli::from_arg_matches(&parsed.matches).unwrap())
    }

    fn file_error(text: &str) -> ConfigFileError {
        match parse_with(text, &[]) {
            Err(ParseError::File(error)) => error,
            other => panic!("expected a file error, got {other:?}"),
        }
    }

    #[test]
    fn the_file_alone_gives_every_kind_of_value() {
        let cli = parse_with(
            "server = \"ws://a/ws\"\ncores = 2\nmax-memory-mb = 512\npin = true\nno-bench = false\n",
            &[],
        )
        .unwrap();
        assert_eq!(cli.server.as_deref(), Some("ws://a/ws"));
        assert_eq!(cli.cores, Some(2));
        assert_eq!(cli.max_memory_mb, 512);
        assert!(cli.pin);
        assert!(!cli.no_bench, "false leaves a flag off");
        assert_eq!(
            cli.max_module_mb, 64,
            "a key not in the file keeps its default"
        );
    }

    #[test]
    fn a_flag_beats_the_file() {
        let text = "server = \"ws://file/ws\"\ncores = 2\nmax-memory-mb = 512\n";
        let cli = parse_with(text, &["--cores", "3", "--max-memory-mb", "1024"]).unwrap();
        assert_eq!(cli.cores, Some(3));
        assert_eq!(
            cli.max_memory_mb, 1024,
            "even when the flag repeats the default"
        );
        assert_eq!(cli.server.as_deref(), Some("ws://file/ws"));
    }

    #[test]
    fn a_flag_drops_a_file_key_it_conflicts_with() {
        let cli = parse_with("server = \"ws://file/ws\"\n", &["--directory", "https://d"]).unwrap();
        assert_eq!(cli.server, None);
        assert_eq!(cli.directory.as_deref(), Some("https://d"));
    }

    #[test]
    fn the_environment_beats_the_file() {
        let cli = parse_with("server = \"ws://a/ws\"\nsearch = \"from the file\"\n", &[]).unwrap();
        assert_eq!(cli.search, std::env::var("PATH").ok());
    }

    #[test]
    fn what_the_file_does_not_give_is_still_required() {
        let error = parse_with("cores = 2\n", &[]).unwrap_err();
        let ParseError::Clap(error) = error else {
            panic!("{error:?}")
        };
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line_and_the_closest_option() {
        let error = file_error("server = \"ws://a/ws\"\n\nmax-memroy-mb = 3\n");
        let text = error.to_string();
        assert!(
            text.ends_with(":3: unknown key `max-memroy-mb`; did you mean `max-memory-mb`?"),
            "{text}"
        );
        let error = file_error("colour = \"blue\"\n");
        assert!(
            error.to_string().ends_with(":1: unknown key `colour`"),
            "{error}"
        );
        let error = file_error("help = true\n");
        assert!(error.to_string().contains("unknown key `help`"), "{error}");
    }

    #[test]
    fn a_wrong_type_says_what_was_wanted() {
        let error = file_error("server = \"ws://a/ws\"\ncores = \"two\"\n");
        assert!(
            error
                .to_string()
                .ends_with(":2: `cores` wants a whole number, not a string"),
            "{error}"
        );
        let error = file_error("pin = \"yes\"\n");
        assert!(
            error
                .to_string()
                .ends_with(":1: `pin` wants true or false, not a string"),
            "{error}"
        );
        let error = file_error("server = 7\n");
        assert!(
            error
                .to_string()
                .ends_with("`server` wants a string (in quotes), not a whole number"),
            "{error}"
        );
    }

    #[test]
    fn a_value_out_of_range_is_refused_by_the_options_own_parser() {
        let error = file_error("server = \"ws://a/ws\"\nmax-module-mb = 0\n");
        let text = error.to_string();
        assert!(
            text.contains(":2: `max-module-mb`: invalid value '0'"),
            "{text}"
        );
        assert!(text.contains("1..=4096"), "{text}");
        let error = file_error("cores = -1\n");
        assert!(
            error.to_string().contains("`cores`: invalid value '-1'"),
            "{error}"
        );
    }

    #[test]
    fn hidden_options_and_nested_config_files_are_refused() {
        let error = file_error("throttle = 5\n");
        assert!(
            error.to_string().ends_with(
                "`throttle` cannot be set in a config file (it is a hidden option, for tests only)"
            ),
            "{error}"
        );
        let error = file_error("config = \"/etc/other.toml\"\n");
        assert!(
            error
                .to_string()
                .contains("a config file cannot name another"),
            "{error}"
        );
    }

    #[test]
    fn conflicting_keys_in_the_file_are_named_together() {
        let error = file_error("server = \"ws://a/ws\"\ndirectory = \"https://d\"\n");
        assert!(
            error
                .to_string()
                .ends_with(":2: `directory` cannot be used with `server` (line 1)"),
            "{error}"
        );
    }

    #[test]
    fn bad_toml_and_missing_files_name_the_file() {
        let error = file_error("cores = \n");
        assert!(matches!(error, ConfigFileError::Syntax { .. }), "{error}");
        assert!(error.to_string().contains("line 1"), "{error}");
        use clap::CommandFactory;
        let error = parse(
            Cli::command(),
            ["worker", "--config", "/nonexistent/worker.toml"],
            "config",
            None,
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot read the config file /nonexistent/worker.toml: "),
            "{error}"
        );
    }

    #[test]
    fn a_missing_default_file_is_no_error_and_an_existing_one_is_read() {
        use clap::CommandFactory;
        let parsed = parse(
            Cli::command(),
            ["worker", "--server", "ws://a/ws"],
            "config",
            Some(Path::new("/nonexistent/worker.toml")),
        )
        .unwrap();
        assert_eq!(parsed.file, None);
        let default = file("cores = 5\n");
        let parsed = parse(
            Cli::command(),
            ["worker", "--server", "ws://a/ws"],
            "config",
            Some(default.path()),
        )
        .unwrap();
        assert_eq!(parsed.matches.get_one::<usize>("cores"), Some(&5));
    }
}
