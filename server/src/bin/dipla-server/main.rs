//! `dipla-server`: run a job over sandboxed wasm workers.
//!
//! The flags are in [`cli`]; each subcommand is a short function here calling the library
//! ([`dipla_server::commands`]) and turning what it returns into an exit code. Errors are
//! printed as `error: ...` with their causes, and exit 2.

mod cli;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use dipla_sandbox::Sandbox;
use dipla_server::JobState;
use dipla_server::commands::run::RunEnd;
use dipla_server::commands::{self, remote};
use dipla_server::directory::DirectoryArgs;

use cli::{
    AuditArgs, Cli, Command, InspectArgs, JobArgs, JobsArgs, LogFormat, ResultsArgs, RunArgs,
    ServeArgs, SubmitArgs, TryArgs,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => run(*args).await,
        Command::Audit(args) => audit(args),
        Command::Directory(args) => directory(args).await,
        Command::Serve(args) => serve(*args).await,
        Command::Submit(args) => submit(args).await,
        Command::Results(args) => results(args).await,
        Command::Jobs(args) => jobs(args).await,
        Command::Status(args) => status(args).await,
        Command::Cancel(args) => cancel(args).await,
        Command::Inspect(args) => inspect(args),
        Command::Try(args) => try_task(args),
    }
}

/// `run`: 0 every task succeeded, 1 some failed, 3 cancelled through the API, 130
/// interrupted.
async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let end = commands::run::run(args.command()?, tokio::signal::ctrl_c()).await?;
    Ok(match end {
        RunEnd::Interrupted => ExitCode::from(130),
        RunEnd::Finished(summary) if summary.cancelled => ExitCode::from(3),
        RunEnd::Finished(summary) => succeeded(summary.success()),
    })
}

/// `serve`: until Ctrl-C, then 130.
async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (options, announce) = args.options()?;
    commands::serve::serve(options, announce, tokio::signal::ctrl_c()).await?;
    Ok(ExitCode::from(130))
}

/// `directory`: until Ctrl-C.
async fn directory(args: DirectoryArgs) -> anyhow::Result<ExitCode> {
    dipla_server::directory::run(args).await?;
    Ok(ExitCode::SUCCESS)
}

/// `audit`: 1 if anything failed.
fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let report = commands::audit::audit(&args.results, &args.state, args.sample)?;
    Ok(succeeded(report.passed()))
}

/// `submit`: with `--wait`, exits as `run` does.
async fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let client = args.remote.client()?;
    let job = remote::submit(&client, &args.manifest).await?;
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let ended = remote::results(&client, &job.id, true, args.out.as_deref()).await?;
    remote::report_end(&ended);
    Ok(exit_code(ended.state))
}

/// `results`: exits as `run` does (0 with `--no-follow` before the job ends).
async fn results(args: ResultsArgs) -> anyhow::Result<ExitCode> {
    let client = args.remote.client()?;
    let follow = !args.no_follow;
    let brief = remote::results(&client, &args.job, follow, args.out.as_deref()).await?;
    if brief.state.ended() {
        remote::report_end(&brief);
    }
    Ok(if !follow && !brief.state.ended() {
        ExitCode::SUCCESS
    } else {
        exit_code(brief.state)
    })
}

async fn jobs(args: JobsArgs) -> anyhow::Result<ExitCode> {
    remote::jobs(&args.remote.client()?).await?;
    Ok(ExitCode::SUCCESS)
}

async fn status(args: JobArgs) -> anyhow::Result<ExitCode> {
    remote::status(&args.remote.client()?, &args.job).await?;
    Ok(ExitCode::SUCCESS)
}

async fn cancel(args: JobArgs) -> anyhow::Result<ExitCode> {
    remote::cancel(&args.remote.client()?, &args.job).await?;
    Ok(ExitCode::SUCCESS)
}

fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    commands::inspect::inspect(&args.module)?;
    Ok(ExitCode::SUCCESS)
}

/// `try`: 0 the task succeeded, 1 it failed.
fn try_task(args: TryArgs) -> anyhow::Result<ExitCode> {
    use dipla_server::trial;
    let limits = trial::limits(args.fuel, args.memory_mb)?;
    let sandbox = Sandbox::new().context("cannot start the sandbox")?;
    let trial = trial::try_task(&sandbox, &args.module, &args.task, &args.input, limits)?;
    if args.json {
        trial.write_json(&mut std::io::stdout().lock())?;
    } else {
        trial.write_text(&mut std::io::stdout().lock(), &mut std::io::stderr().lock())?;
    }
    Ok(succeeded(trial.succeeded()))
}

/// 0 or 1.
fn succeeded(success: bool) -> ExitCode {
    if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The exit code for a job that ended so (as for `run`).
fn exit_code(state: JobState) -> ExitCode {
    match state {
        JobState::Succeeded => ExitCode::SUCCESS,
        JobState::Cancelled => ExitCode::from(3),
        JobState::Running | JobState::Failed => ExitCode::FAILURE,
        JobState::Broken => ExitCode::from(2),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,dipla_server=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// mimalloc: the server and worker allocate many small, short-lived buffers (messages, JSON)
/// from several threads, which glibc's allocator serves markedly slower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
