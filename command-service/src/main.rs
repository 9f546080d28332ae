use clap::Parser;
use command_service::{
    app::{self, App},
    config::{Cli, Command},
};
use shared::{http, shutdown, telemetry};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck) = cli.command {
        if let Err(why) = http::check_readiness(cli.config.http_addr).await {
            eprintln!("not ready: {why}");
            std::process::exit(1);
        }
        return Ok(());
    }
    let telemetry = telemetry::init("command-service", &cli.config.telemetry)?;
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => match cli.config.database() {
            Ok(database) => {
                app::migrate(&database, &cli.config.database.migration_settings()).await
            }
            Err(error) => Err(error.into()),
        },
        // Answered before telemetry starts.
        Command::Healthcheck => Ok(()),
        Command::Serve => {
            let app = App::build(cli.config).await?;
            let stop = CancellationToken::new();
            shutdown::cancel_on_signal(stop.clone());
            app.run(stop).await
        }
    };
    if let Err(error) = &result {
        tracing::error!(error = format!("{error:#}"), "command-service failed");
    }
    telemetry.shutdown();
    result
}
