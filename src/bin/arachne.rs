//! The `arachne` command: `arachne crawl SPIDER ...`, `arachne list`. With no project
//! of its own it knows the built-in spiders; a project calls `arachne::cli::run` from
//! its own `main` with its spiders to get the same command.

fn main() -> std::process::ExitCode {
    arachne::cli::run(arachne::project::Project::default())
}
