//! `secapp apps ...`, `secapp tokens ...` and `secapp dead-letters ...`
//! (`dead_letters.rs`): the admin operations from the
//! command line, against a running server (`--server` with an admin token,
//! over the admin API) or directly on a stopped server's data dir (for
//! bootstrap and recovery). Both paths run the same validation and audit:
//! online through the server, offline through the same registry code the
//! server uses.
//!
//! - `client.rs`: the operations over HTTP or on a data dir.
//! - `print.rs`: tables for people, JSON with `--json`.

pub(crate) mod client;
mod dead_letters;
mod print;

pub use dead_letters::{DeadLettersCommand, dead_letters};

use client::Admin;
use print::{print_app, print_apps, print_issued, print_json, print_tokens, show};

use std::path::PathBuf;

use clap::{Args, Subcommand};
use secapp_api::admin::{AppPatch, AppsAnswer, NewApp, NewToken, TokensAnswer};
use secapp_server::access::AccessError;
use secapp_server::store::DatabaseUrl;

/// Where the command acts.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// A running server's base URL, e.g. http://127.0.0.1:8000; without it
    /// the command works on the data dir of a stopped server.
    #[arg(long, env = "SECAPP_SERVER", value_name = "URL", global = true)]
    server: Option<String>,

    /// An admin token, for --server.
    #[arg(
        long,
        env = "SECAPP_ADMIN_TOKEN",
        value_name = "TOKEN",
        global = true,
        hide_env_values = true
    )]
    token: Option<String>,

    /// The data dir of a stopped server, when --server is not given.
    #[arg(
        long,
        env = "SECAPP_DATA_DIR",
        value_name = "DIR",
        default_value = "./secapp-data",
        global = true
    )]
    data_dir: PathBuf,

    /// The database of a stopped server, when it is not SQLite in the data
    /// dir (as `secapp serve --database-url`).
    #[arg(long, env = "SECAPP_DATABASE_URL", value_name = "URL", global = true)]
    database_url: Option<DatabaseUrl>,

    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

/// `secapp apps ...`.
#[derive(Debug, Args)]
pub struct AppsCommand {
    #[command(subcommand)]
    action: AppsAction,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Subcommand)]
enum AppsAction {
    /// Register an application and issue its first token.
    Add {
        /// Its name: the App-name its tokens speak for.
        name: String,
        /// A role: publish, consume, viewer or admin (repeat for several).
        #[arg(long = "role", required = true, value_name = "ROLE")]
        roles: Vec<String>,
        /// What it is.
        #[arg(long)]
        description: Option<String>,
        /// Who runs it.
        #[arg(long)]
        owner: Option<String>,
        /// Register only; issue tokens later with `secapp tokens issue`.
        #[arg(long)]
        no_token: bool,
        #[command(flatten)]
        token: TokenOptions,
    },
    /// List the registered applications.
    List,
    /// Show one application and its tokens.
    Show {
        /// The application.
        name: String,
    },
    /// Change an application's roles, description, owner or stale allowance.
    Update {
        /// The application.
        name: String,
        /// The new roles, replacing the old ones (repeat for several).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// The new description ("" clears it).
        #[arg(long)]
        description: Option<String>,
        /// The new owner ("" clears it).
        #[arg(long)]
        owner: Option<String>,
        /// How long it may go without polling or holding a stream before
        /// it counts as stale, such as 5m or 2h ("" returns it to the
        /// server's --stale-after).
        #[arg(long, value_name = "SPAN")]
        stale_after: Option<String>,
    },
    /// Disable an application: its tokens are refused until it is enabled.
    Disable {
        /// The application.
        name: String,
    },
    /// Enable a disabled application again.
    Enable {
        /// The application.
        name: String,
    },
}

/// Expiry and label of a token to issue.
#[derive(Debug, Clone, Default, Args)]
struct TokenOptions {
    /// Lifetime: a whole number and one unit, d, h, m or s, e.g. 90d or 12h
    /// (default: never expires).
    #[arg(long, value_name = "DURATION", conflicts_with = "expires_at")]
    expires_in: Option<String>,
    /// Expiry time, RFC 3339.
    #[arg(long, value_name = "TIME")]
    expires_at: Option<String>,
    /// A note, such as where the token is deployed.
    #[arg(long)]
    label: Option<String>,
}

impl From<TokenOptions> for NewToken {
    fn from(options: TokenOptions) -> Self {
        Self {
            expires_in: options.expires_in,
            expires_at: options.expires_at,
            label: options.label,
        }
    }
}

/// `secapp tokens ...`.
#[derive(Debug, Args)]
pub struct TokensCommand {
    #[command(subcommand)]
    action: TokensAction,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Subcommand)]
enum TokensAction {
    /// Issue a token for an application; it is printed once.
    Issue {
        /// The application.
        app: String,
        #[command(flatten)]
        token: TokenOptions,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this application's tokens.
        #[arg(long)]
        app: Option<String>,
    },
    /// Revoke a token by id: it is refused from the next request on.
    Revoke {
        /// The token's id (tok_...).
        id: String,
    },
}

/// A failure to report: the text is printed after `secapp: `.
#[derive(Debug)]
pub struct CliError(pub String);

impl From<AccessError> for CliError {
    fn from(e: AccessError) -> Self {
        Self(e.to_string())
    }
}

impl From<secapp_server::error::ApiError> for CliError {
    fn from(e: secapp_server::error::ApiError) -> Self {
        Self(format!("{e} ({})", e.kind().code()))
    }
}

/// Runs `secapp apps ...`.
///
/// # Errors
/// [`CliError`] with what went wrong and what to do.
pub async fn apps(command: AppsCommand) -> Result<(), CliError> {
    let json = command.target.json;
    let admin = Admin::connect(&command.target).await?;
    let result = run_apps(&admin, command.action, json).await;
    admin.close().await;
    result
}

/// Runs `secapp tokens ...`.
///
/// # Errors
/// [`CliError`] with what went wrong and what to do.
pub async fn tokens(command: TokensCommand) -> Result<(), CliError> {
    let json = command.target.json;
    let admin = Admin::connect(&command.target).await?;
    let result = run_tokens(&admin, command.action, json).await;
    admin.close().await;
    result
}

async fn run_apps(admin: &Admin, action: AppsAction, json: bool) -> Result<(), CliError> {
    match action {
        AppsAction::Add {
            name,
            roles,
            description,
            owner,
            no_token,
            token,
        } => {
            let new = NewApp {
                name,
                roles,
                description,
                owner,
            };
            let app = admin.create_app(new).await?;
            let issued = if no_token {
                None
            } else {
                Some(admin.issue_token(&app.name, token.into()).await?)
            };
            if json {
                print_json(&serde_json::json!({ "app": app, "token": issued }));
            } else {
                print_app(&app);
                if let Some(issued) = issued {
                    println!();
                    print_issued(&issued);
                }
            }
        }
        AppsAction::List => {
            let apps = admin.apps().await?;
            if json {
                print_json(&AppsAnswer { apps });
            } else {
                print_apps(&apps);
            }
        }
        AppsAction::Show { name } => show(&admin.app(&name).await?, json),
        AppsAction::Update {
            name,
            roles,
            description,
            owner,
            stale_after,
        } => {
            let patch = AppPatch {
                roles: (!roles.is_empty()).then_some(roles),
                description,
                owner,
                disabled: None,
                stale_after,
            };
            if patch == AppPatch::default() {
                return Err(CliError(
                    "nothing to change: give --role, --description, --owner or --stale-after"
                        .to_owned(),
                ));
            }
            show(&admin.update_app(&name, patch).await?, json);
        }
        AppsAction::Disable { name } => {
            let patch = AppPatch {
                disabled: Some(true),
                ..AppPatch::default()
            };
            show(&admin.update_app(&name, patch).await?, json);
        }
        AppsAction::Enable { name } => {
            let patch = AppPatch {
                disabled: Some(false),
                ..AppPatch::default()
            };
            show(&admin.update_app(&name, patch).await?, json);
        }
    }
    Ok(())
}

async fn run_tokens(admin: &Admin, action: TokensAction, json: bool) -> Result<(), CliError> {
    match action {
        TokensAction::Issue { app, token } => {
            let issued = admin.issue_token(&app, token.into()).await?;
            if json {
                print_json(&issued);
            } else {
                print_issued(&issued);
            }
        }
        TokensAction::List { app } => {
            let tokens = admin.tokens(app.as_deref()).await?;
            if json {
                print_json(&TokensAnswer { tokens });
            } else {
                print_tokens(&tokens);
            }
        }
        TokensAction::Revoke { id } => {
            let token = admin.revoke_token(&id).await?;
            if json {
                print_json(&token);
            } else {
                println!("revoked {} (application {})", token.id, token.app);
            }
        }
    }
    Ok(())
}
