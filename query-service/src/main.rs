use clap::Parser;
use query_service::{
    app::{self, App},
    config::{Cli, Command},
    replay,
};
use tokio_util::sync::CancellationToken;
use users_shared::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = telemetry::init("query-service", &cli.config.telemetry)?;
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => app::migrate(&cli.config.database_url).await,
        Command::Replay => replay::replay(&cli.config).await.map(|_| ()),
        Command::Serve => {
            let app = App::build(cli.config).await?;
            let stop = CancellationToken::new();
            shutdown::cancel_on_signal(stop.clone());
            app.run(stop).await
        }
    };
    if let Err(error) = &result {
        tracing::error!(error = format!("{error:#}"), "query-service failed");
    }
    telemetry.shutdown();
    result
}
