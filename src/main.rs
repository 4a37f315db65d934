//! Entry point: parse flags, run, and turn the outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;
use file_processor::cli::Cli;
use file_processor::config::Config;

fn main() -> ExitCode {
    file_processor::allocator::tune();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            // clap explains at length; the contract is one `error: ...` line.
            let rendered = err.render().to_string();
            eprintln!("{}", rendered.lines().next().unwrap_or("error: bad usage"));
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,actix_server=warn"),
    )
    .init();
    match Config::from_cli(cli)
        .map_err(Into::into)
        .and_then(file_processor::run)
    {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
