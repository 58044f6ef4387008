//! The command line.

use crate::app::App;
use crate::config::Config;
use crate::flows;
use anyhow::Context;
use clap::{Parser, Subcommand};
use rf_core::domain::Role;
use rf_core::flow::{FlowBody, FlowSource, SaveOutcome};
use rf_core::ids::SessionId;
use rf_core::links::LinkScope;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::net::TcpListener;

/// ResolutionFlow: chat-ops troubleshooting for MSPs.
///
/// With no command it serves: the web companion and webhooks on RF_LISTEN (default
/// 127.0.0.1:8080), plus the console when stdin is a terminal.
#[derive(Debug, Parser)]
#[command(name = "resolutionflow", version)]
struct Cli {
    /// A TOML configuration file (default: ./resolutionflow.toml if it exists).
    #[arg(long, global = true, env = "RF_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the companion and webhooks (the default).
    Serve {
        /// Do not start the console even when stdin is a terminal.
        #[arg(long)]
        no_console: bool,
    },
    /// The console: troubleshoot in this terminal (works with piped input, for scripts).
    Console {
        /// Do not serve the companion while the console runs.
        #[arg(long)]
        no_http: bool,
    },
    /// Validate, import, export or list flow files.
    Flows {
        #[command(subcommand)]
        command: FlowsCommand,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Show or change the console team's escalation settings (channels, ladder, working hours,
    /// idle-claim policy) as JSON.
    Team {
        #[command(subcommand)]
        command: TeamCommand,
    },
    /// The console team's PSA connection (ConnectWise Manage, Autotask, HaloPSA).
    Psa {
        #[command(subcommand)]
        command: PsaCommand,
    },
    /// Master key maintenance.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print a signed companion link to a session's timeline.
    Link {
        /// The session id (shown on its companion page and in exports).
        session: String,
    },
}

#[derive(Debug, Subcommand)]
enum FlowsCommand {
    /// Check flow files without importing; exits non-zero if any is invalid.
    Validate {
        /// Files or folders of .yaml files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Import flow files (valid files are imported; invalid ones are reported and skipped).
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write every flow in the library to <dir>/<id>.yaml.
    Export { dir: PathBuf },
    /// List the flow library.
    List,
    /// Run the knowledge flywheel now: cluster resolved sessions no flow covers and draft a flow
    /// for each cluster (needs an AI model). Drafts wait for review in the companion.
    Propose,
    /// List the flow proposals and where they stand.
    Proposals,
}

#[derive(Debug, Subcommand)]
enum TeamCommand {
    /// Print the settings (edit the output and apply it with `--set`).
    Settings {
        /// A JSON file with new settings to apply.
        #[arg(long)]
        set: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Re-encrypt every stored secret (workspace bot tokens) from the previous master key to the
    /// current one (RF_MASTER_KEY or the key file). Safe to run again. Companion links signed with
    /// the previous key stop working.
    Rotate {
        /// The previous master key, base64.
        #[arg(long, env = "RF_OLD_MASTER_KEY", hide_env_values = true)]
        old_key: String,
    },
}

#[derive(Debug, Subcommand)]
enum PsaCommand {
    /// Connect the team to a PSA: `psa add connectwise --set site=na.myconnectwise.net --set
    /// company=acme`. Credentials are never arguments: each is read from RF_PSA_<NAME> (e.g.
    /// RF_PSA_PRIVATE_KEY) or asked for on stdin. The connection is tested before it is saved.
    Add {
        /// connectwise, autotask or halo.
        provider: String,
        /// A setting, NAME=VALUE (repeat). `psa fields <provider>` lists them.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        settings: Vec<String>,
        /// Save without testing the connection first.
        #[arg(long)]
        no_test: bool,
    },
    /// List a provider's settings and credentials.
    Fields { provider: String },
    /// Show the team's connection (never its credentials).
    Show,
    /// Test the saved connection.
    Test,
    /// Disconnect the team (its member mapping goes too).
    Remove,
    /// Credit a chat user's notes to a PSA member: `psa map jane jdoe`.
    Map {
        /// The chat user (user id or display name).
        user: String,
        /// The PSA member (ConnectWise identifier, Autotask resource id or user name, Halo agent).
        member: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the default configuration as TOML.
    Default,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that need neither configuration nor a runtime.
    match &cli.command {
        Some(Command::Config {
            command: ConfigCommand::Default,
        }) => {
            print!("{}", Config::default_toml());
            return ExitCode::SUCCESS;
        }
        Some(Command::Flows {
            command: FlowsCommand::Validate { paths },
        }) => return validate(paths),
        _ => {}
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let console_mode = matches!(cli.command, Some(Command::Console { .. }))
        || (cli.command.is_none() && std::io::stdin().is_terminal());
    init_tracing(&config, console_mode);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(config: &Config, console_mode: bool) {
    use tracing_subscriber::EnvFilter;
    // In the console, logs would interleave with the conversation: only warnings, unless asked.
    let level = match std::env::var("RF_LOG") {
        Ok(level) => level,
        Err(_) if console_mode => "warn".to_owned(),
        Err(_) => config.log.level.clone(),
    };
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if config.log.format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

async fn run(command: Option<Command>, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        None => serve(config, std::io::stdin().is_terminal()).await,
        Some(Command::Serve { no_console }) => {
            serve(config, !no_console && std::io::stdin().is_terminal()).await
        }
        Some(Command::Console { no_http }) => console(config, !no_http).await,
        Some(Command::Flows { command }) => flows_command(command, config).await,
        Some(Command::Link { session }) => link(&session, config).await,
        Some(Command::Keys {
            command: KeysCommand::Rotate { old_key },
        }) => rotate_keys(&old_key, config).await,
        Some(Command::Team {
            command: TeamCommand::Settings { set },
        }) => team_settings(set, config).await,
        Some(Command::Psa { command }) => psa_command(command, config).await,
        Some(Command::Config { .. }) => Ok(ExitCode::SUCCESS),
    }
}

async fn bind(config: &Config) -> anyhow::Result<TcpListener> {
    TcpListener::bind(&config.http.listen)
        .await
        .with_context(|| {
            format!(
                "listening on {} (set RF_LISTEN to use another address)",
                config.http.listen
            )
        })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn serve(config: Config, with_console: bool) -> anyhow::Result<ExitCode> {
    let app = App::build(config).await?;
    let listener = bind(&app.config).await?;
    let background = app.start_background();
    eprintln!(
        "ResolutionFlow is running: companion at {}",
        app.config.public_url()
    );
    if with_console {
        let (quit_tx, quit_rx) = tokio::sync::oneshot::channel::<()>();
        let console = make_console(&app).await?;
        tokio::spawn(async move {
            if let Err(e) = rf_console::run(
                console,
                tokio::io::BufReader::new(tokio::io::stdin()),
                tokio::io::stdout(),
                true,
            )
            .await
            {
                tracing::error!(error = %e, "console failed");
            }
            let _ = quit_tx.send(());
        });
        let shutdown = async move {
            tokio::select! {
                () = shutdown_signal() => {},
                _ = quit_rx => {},
            }
        };
        app.serve(listener, shutdown).await?;
    } else {
        app.serve(listener, shutdown_signal()).await?;
    }
    background.stop().await;
    app.store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn make_console(app: &App) -> anyhow::Result<rf_console::Console> {
    let role: Role = app.config.console.role.parse().context("console.role")?;
    let console = rf_console::Console::new(
        app.engine.clone(),
        app.console.clone(),
        &app.config.console.user,
        role,
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    // With the worker in this process, a script sees cards before its next line.
    Ok(if app.config.jobs.enabled {
        console.with_settle(app.console_settle())
    } else {
        console
    })
}

async fn console(config: Config, with_http: bool) -> anyhow::Result<ExitCode> {
    let app = App::build(config).await?;
    // The console runs due jobs itself, between lines and on its timer, so a script's output is
    // deterministic: no second worker races it.
    let background = app.start_background_with(false);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = if with_http {
        match bind(&app.config).await {
            Ok(listener) => {
                let app = app.clone();
                Some(tokio::spawn(async move {
                    let stop = async {
                        let _ = stop_rx.await;
                    };
                    if let Err(e) = app.serve(listener, stop).await {
                        tracing::error!(error = %e, "companion stopped");
                    }
                }))
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "the companion is not served; links will not open");
                None
            }
        }
    } else {
        None
    };
    let console = make_console(&app).await?;
    let interactive = std::io::stdin().is_terminal();
    rf_console::run(
        console,
        tokio::io::BufReader::new(tokio::io::stdin()),
        tokio::io::stdout(),
        interactive,
    )
    .await?;
    let _ = stop_tx.send(());
    if let Some(server) = server {
        let _ = server.await;
    }
    background.stop().await;
    app.store.close().await;
    Ok(ExitCode::SUCCESS)
}

fn describe(flow: &rf_core::flow::Flow) -> String {
    match &flow.body {
        FlowBody::Tree(tree) => format!("{} nodes", tree.nodes.len()),
        FlowBody::Checklist(checklist) => format!("{} steps", checklist.len()),
        FlowBody::Maintenance {
            schedule,
            targets,
            checklist,
        } => format!(
            "{} steps × {} targets, schedule `{schedule}`",
            checklist.len(),
            targets.len()
        ),
    }
}

fn validate(paths: &[PathBuf]) -> ExitCode {
    let files = match flows::read_flow_files(paths) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if files.is_empty() {
        eprintln!("error: no .yaml flow files found");
        return ExitCode::from(2);
    }
    let mut invalid = 0;
    for file in &files {
        match &file.result {
            Ok(flow) => println!(
                "ok      {}: {} ({}, {})",
                file.path.display(),
                flow.meta.title,
                flow.meta.kind,
                describe(flow)
            ),
            Err(e) => {
                invalid += 1;
                eprintln!("{e}");
            }
        }
    }
    println!("{} valid, {invalid} invalid", files.len() - invalid);
    if invalid > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn flows_command(command: FlowsCommand, config: Config) -> anyhow::Result<ExitCode> {
    let app = App::build(config).await?;
    let store = app.store.as_ref();
    let code = match command {
        FlowsCommand::Validate { paths } => validate(&paths),
        FlowsCommand::Import { paths } => {
            let files = flows::read_flow_files(&paths)?;
            let mut valid = Vec::new();
            let mut invalid = 0;
            for file in &files {
                match &file.result {
                    Ok(flow) => valid.push(flow),
                    Err(e) => {
                        invalid += 1;
                        eprintln!("{e}");
                        eprintln!("not imported: {}", file.path.display());
                    }
                }
            }
            let outcomes = flows::import(
                store,
                app.account.id,
                &valid,
                FlowSource::Imported,
                app.engine.now(),
            )
            .await?;
            for (slug, outcome, version) in &outcomes {
                let word = match outcome {
                    SaveOutcome::Created => "created",
                    SaveOutcome::Updated => "updated",
                    SaveOutcome::Unchanged => "unchanged",
                };
                println!("{word:<9} {slug} (v{version})");
            }
            println!("{} imported, {invalid} invalid", outcomes.len());
            if invalid > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        FlowsCommand::Export { dir } => {
            let count = flows::export(store, app.account.id, &dir).await?;
            println!("exported {count} flows to {}", dir.display());
            ExitCode::SUCCESS
        }
        FlowsCommand::List => {
            use rf_core::Store as _;
            for flow in store.list_flows(app.account.id).await? {
                println!(
                    "{:<28} v{:<3} {:<16} {:<24} {}",
                    flow.slug, flow.version, flow.kind, flow.category, flow.title
                );
            }
            ExitCode::SUCCESS
        }
        FlowsCommand::Propose => {
            use rf_core::Store as _;
            if matches!(app.config.ai.provider.as_str(), "offline" | "off" | "") {
                eprintln!(
                    "the flywheel drafts flows with an AI model: set [ai] provider (RF_AI__PROVIDER) and its key"
                );
                ExitCode::FAILURE
            } else {
                let before = store.flow_proposals(app.account.id, None).await?.len();
                let job = rf_core::jobs::NewJob::now(
                    app.account.id,
                    rf_core::jobs::Job::Flywheel,
                    app.engine.now(),
                );
                store.enqueue(vec![job], app.engine.now()).await?;
                app.worker.run_due().await;
                let after = store.flow_proposals(app.account.id, None).await?.len();
                println!(
                    "{} new proposal(s); review them on the companion's Flow proposals page (/team/proposals)",
                    after.saturating_sub(before)
                );
                ExitCode::SUCCESS
            }
        }
        FlowsCommand::Proposals => {
            use rf_core::Store as _;
            for p in store.flow_proposals(app.account.id, None).await? {
                println!(
                    "{:<9} {:<10} {} ({} source sessions) {}",
                    p.status,
                    p.origin,
                    p.created_at.display_utc(),
                    p.source_sessions.len(),
                    p.title
                );
            }
            ExitCode::SUCCESS
        }
    };
    app.store.close().await;
    Ok(code)
}

async fn link(session: &str, config: Config) -> anyhow::Result<ExitCode> {
    use rf_core::Store as _;
    let app = App::build(config).await?;
    let id = SessionId::parse(session)?;
    let session = app
        .store
        .get_session(app.account.id, id)
        .await
        .with_context(|| format!("session {id} in account \"{}\"", app.account.name))?;
    let owner = app.store.get_user(app.account.id, session.owner_id).await?;
    let url = app
        .engine
        .share_link(
            app.account.id,
            owner.id,
            owner.role,
            LinkScope::Session(session.id),
        )
        .await?
        .context("the companion is not configured")?;
    println!("{url}");
    app.store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn rotate_keys(old_key: &str, config: Config) -> anyhow::Result<ExitCode> {
    use crate::keys::{KeySource, MasterKey};
    let old = MasterKey::from_base64(old_key).context("the previous master key (--old-key)")?;
    let (current, source) = MasterKey::load(
        config.security.master_key.as_ref(),
        &config.security.key_file,
    )?;
    if source == KeySource::Generated {
        anyhow::bail!(
            "no current master key was configured, so a new one was generated into {}; set RF_MASTER_KEY (or keep that file) and run this again",
            config.security.key_file.display()
        );
    }
    let store = rf_store::SqlStore::open(&config.database.url, &Default::default())
        .await
        .with_context(|| {
            format!(
                "opening the database {}",
                crate::app::redact_url(&config.database.url)
            )
        })?;
    let now = rf_core::time::Clock::now(&rf_core::time::SystemClock);
    let done = crate::keys::rotate(&store, &old, &current, now).await?;
    println!(
        "re-encrypted {} stored secret(s) under the current master key; {} already were",
        done.rotated, done.current
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn team_settings(set: Option<PathBuf>, config: Config) -> anyhow::Result<ExitCode> {
    use rf_core::Store as _;
    let app = App::build(config).await?;
    let team = app.store.get_team(app.account.id, app.team.id).await?;
    let settings = match set {
        None => team.settings,
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let settings: rf_core::team::TeamSettings = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid team settings", path.display()))?;
            app.store
                .save_team_settings(app.account.id, team.id, &settings)
                .await?;
            eprintln!("saved the settings of team \"{}\"", team.name);
            settings
        }
    };
    println!("{}", serde_json::to_string_pretty(&settings)?);
    app.store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn psa_command(command: PsaCommand, config: Config) -> anyhow::Result<ExitCode> {
    use rf_core::Store as _;
    use rf_core::psa::Provider;
    if let PsaCommand::Fields { provider } = &command {
        let provider: Provider = provider.parse().map_err(anyhow::Error::msg)?;
        println!("{} settings (--set NAME=VALUE):", provider.title());
        for field in rf_psa::fields(provider).iter().filter(|f| !f.secret) {
            println!("  {:<14} {}{}", field.name, field.help, required(field));
        }
        println!("credentials (environment variable, or asked for on stdin):");
        for field in rf_psa::fields(provider).iter().filter(|f| f.secret) {
            println!(
                "  RF_PSA_{:<10} {}{}",
                field.name.to_uppercase(),
                field.help,
                required(field)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let app = App::build(config).await?;
    let (account, team) = (app.account.id, app.team.id);
    let code = match command {
        PsaCommand::Fields { .. } => ExitCode::SUCCESS,
        PsaCommand::Add {
            provider,
            settings,
            no_test,
        } => {
            let provider: Provider = provider.parse().map_err(anyhow::Error::msg)?;
            let (settings, credentials) = psa_fields(provider, &settings)?;
            if !no_test {
                eprintln!("testing the connection to {}…", provider.title());
                let about = app
                    .desk
                    .try_connection(provider, &settings, &credentials)
                    .await
                    .map_err(|e| anyhow::anyhow!("the connection test failed: {e}"))?;
                eprintln!("connected: {about}");
            }
            let saved = app
                .desk
                .save(account, team, provider, settings, &credentials)
                .await?;
            println!(
                "team {} is connected to {} (connection {}); credentials are stored encrypted",
                app.team.name,
                provider.title(),
                saved.id
            );
            ExitCode::SUCCESS
        }
        PsaCommand::Show => match app.store.psa_connection(account, team).await? {
            Some(connection) => {
                println!("provider: {}", connection.provider.title());
                println!("settings: {}", connection.settings);
                println!("credentials: stored encrypted (never shown)");
                for mapping in app.store.psa_members(account, connection.id).await? {
                    let user = app.store.get_user(account, mapping.user_id).await?;
                    println!(
                        "member: {} → {} ({}, {})",
                        user.display_name,
                        mapping.member.id,
                        mapping.member.name,
                        mapping.source.as_str()
                    );
                }
                ExitCode::SUCCESS
            }
            None => {
                println!("team {} has no PSA connection", app.team.name);
                ExitCode::from(1)
            }
        },
        PsaCommand::Test => match app.desk.test(account, team).await {
            Ok(about) => {
                println!("connected: {about}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        PsaCommand::Remove => {
            if app.store.delete_psa_connection(account, team).await? {
                println!("team {} is disconnected from its PSA", app.team.name);
            } else {
                println!("team {} had no PSA connection", app.team.name);
            }
            ExitCode::SUCCESS
        }
        PsaCommand::Map { user, member } => {
            let users = app.store.list_users(account).await?;
            let wanted = user.trim_start_matches('@');
            let found = users
                .iter()
                .find(|u| {
                    u.platform_user_id.eq_ignore_ascii_case(wanted)
                        || u.display_name.eq_ignore_ascii_case(wanted)
                })
                .with_context(|| format!("no user {wanted:?} in this account"))?;
            let mapped = app
                .desk
                .map_member(account, team, found.id, &member)
                .await
                .map_err(anyhow::Error::msg)?;
            println!(
                "{}'s notes are credited to {} ({})",
                found.display_name, mapped.name, mapped.id
            );
            ExitCode::SUCCESS
        }
    };
    app.store.close().await;
    Ok(code)
}

fn required(field: &rf_psa::Field) -> &'static str {
    if field.required { " (required)" } else { "" }
}

/// Settings from `--set NAME=VALUE`, credentials from RF_PSA_<NAME> or stdin.
fn psa_fields(
    provider: rf_core::psa::Provider,
    pairs: &[String],
) -> anyhow::Result<(serde_json::Value, serde_json::Value)> {
    let fields = rf_psa::fields(provider);
    let mut settings = serde_json::Map::new();
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .with_context(|| format!("--set {pair}: use NAME=VALUE"))?;
        match fields.iter().find(|f| f.name == name.trim()) {
            Some(field) if field.secret => anyhow::bail!(
                "{name} is a credential: set RF_PSA_{} instead of passing it as an argument",
                field.name.to_uppercase()
            ),
            Some(field) => {
                settings.insert(field.name.to_owned(), value.trim().into());
            }
            None => anyhow::bail!(
                "{} has no setting {name:?}; `resolutionflow psa fields {provider}` lists them",
                provider.title()
            ),
        }
    }
    let mut credentials = serde_json::Map::new();
    let mut stdin = std::io::stdin().lines();
    for field in fields.iter().filter(|f| f.secret) {
        let value = match std::env::var(format!("RF_PSA_{}", field.name.to_uppercase())) {
            Ok(value) => value,
            Err(_) => {
                eprint!("{} ({}): ", field.label, field.name);
                stdin.next().transpose()?.unwrap_or_default()
            }
        };
        let value = value.trim();
        if value.is_empty() && field.required {
            anyhow::bail!(
                "{} needs {}: set RF_PSA_{}",
                provider.title(),
                field.name,
                field.name.to_uppercase()
            );
        }
        if !value.is_empty() {
            credentials.insert(field.name.to_owned(), value.into());
        }
    }
    Ok((settings.into(), credentials.into()))
}
