//! The fault suite: runs the real command-service and query-service binaries against a real
//! broker and the real Postgres, injects faults from outside the processes (signals, dropped
//! connections, refused topics, poison records, bad requests), checks that nothing
//! acknowledged is lost, and prints what held.
//!
//! `fault-suite [SCENARIO...]` runs the named scenarios (all by default); `--list` names
//! them. Exits non-zero when any scenario fails.

mod client;
mod groups;
mod ledger;
mod load;
mod models;
mod outcome;
mod pg;
mod probe;
mod process;
mod report;
mod scenarios;
mod stack;
mod topics;
mod watch;

use std::process::ExitCode;

use process::Suite;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = scenarios::all();
    if args.iter().any(|arg| arg == "--list") {
        for scenario in &all {
            println!("{:<16} {}", scenario.name, scenario.fault);
        }
        return ExitCode::SUCCESS;
    }
    let unknown: Vec<&String> = args
        .iter()
        .filter(|arg| !all.iter().any(|scenario| scenario.name == arg.as_str()))
        .collect();
    if !unknown.is_empty() {
        eprintln!("unknown scenario(s) {unknown:?}; `--list` names them");
        return ExitCode::from(2);
    }
    let suite = match Suite::locate() {
        Ok(suite) => suite,
        Err(error) => {
            eprintln!("fault-suite: {error:#}");
            return ExitCode::from(2);
        }
    };

    let started = std::time::Instant::now();
    let mut outcomes = Vec::new();
    for scenario in all
        .iter()
        .filter(|scenario| args.is_empty() || args.iter().any(|arg| arg == scenario.name))
    {
        outcomes.push(scenarios::run(scenario, &suite).await);
    }

    println!();
    println!("{}", report::table(&outcomes));
    println!("{}", report::details(&outcomes));
    println!(
        "fault suite took {:.0} s; {}",
        started.elapsed().as_secs_f64(),
        if outcomes.iter().all(outcome::Outcome::passed) {
            let _ = std::fs::remove_dir_all(&suite.log_dir);
            "every scenario passed".to_owned()
        } else {
            format!("the services' logs are in {}", suite.log_dir.display())
        }
    );
    println!("{}", report::summary(&outcomes));
    if outcomes.iter().all(outcome::Outcome::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
