//! `secapp apps ...` and `secapp tokens ...`: the admin operations from the
//! command line, against a running server (`--server` with an admin token,
//! over the admin API) or directly on a stopped server's data dir (for
//! bootstrap and recovery). Both paths run the same validation and audit:
//! online through the server, offline through the same registry code the
//! server uses.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use secapp_api::ErrorBody;
use secapp_api::admin::{
    AppPatch, AppView, AppsAnswer, IssuedToken, NewApp, NewToken, TokenView, TokensAnswer,
};
use secapp_server::access::{Access, AccessError, Actor, validate};
use secapp_server::data_dir::DataDir;
use secapp_server::routes::admin::views;
use secapp_server::store::{self, DatabaseUrl, Store};

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
    /// Change an application's roles, description or owner.
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
        } => {
            let patch = AppPatch {
                roles: (!roles.is_empty()).then_some(roles),
                description,
                owner,
                disabled: None,
            };
            if patch == AppPatch::default() {
                return Err(CliError(
                    "nothing to change: give --role, --description or --owner".to_owned(),
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

/// The admin operations, over HTTP or on a data dir.
enum Admin {
    Online {
        client: reqwest::Client,
        base: String,
        token: String,
    },
    Offline {
        /// Held while the command runs, so no server starts on it meanwhile.
        _data_dir: DataDir,
        store: Arc<dyn Store>,
        access: Box<Access>,
    },
}

impl Admin {
    async fn connect(target: &Target) -> Result<Self, CliError> {
        if let Some(server) = &target.server {
            let token = target.token.clone().ok_or_else(|| {
                CliError(
                    "--server needs an admin token: pass --token or set SECAPP_ADMIN_TOKEN"
                        .to_owned(),
                )
            })?;
            return Ok(Self::Online {
                client: reqwest::Client::new(),
                base: server.trim_end_matches('/').to_owned(),
                token,
            });
        }
        // A running server holds its data dir: taking it tells the two apart.
        let data_dir = DataDir::open(&target.data_dir).map_err(|e| {
            CliError(format!(
                "{e}\n(a running server owns its data dir: use --server URL --token ADMIN_TOKEN instead)"
            ))
        })?;
        let url = target
            .database_url
            .clone()
            .unwrap_or_else(|| DatabaseUrl::sqlite_in(data_dir.path()));
        let store = store::connect(&url)
            .await
            .map_err(|e| CliError(format!("cannot open the database {url}: {e}")))?;
        let snapshot = store
            .snapshot()
            .await
            .map_err(|e| CliError(e.to_string()))?;
        for token in snapshot
            .unreadable_tokens
            .iter()
            .filter(|token| token.revoked_at.is_none())
        {
            eprintln!(
                "secapp: token {} (application {}) cannot be read: {}; it is refused, \
                 revoke it with `secapp tokens revoke {}`",
                token.id, token.app, token.problem, token.id
            );
        }
        let access = Box::new(
            Access::new(store.clone(), snapshot.apps, snapshot.tokens, None)
                .with_unreadable(snapshot.unreadable_tokens)
                .without_lockout_guard(),
        );
        Ok(Self::Offline {
            _data_dir: data_dir,
            store,
            access,
        })
    }

    async fn close(self) {
        if let Self::Offline { store, .. } = self
            && let Err(e) = store.close().await
        {
            eprintln!("secapp: closing the data dir: {e}");
        }
    }

    async fn apps(&self) -> Result<Vec<AppView>, CliError> {
        match self {
            Self::Online { .. } => Ok(self
                .call::<AppsAnswer>(reqwest::Method::GET, "/admin/apps", None)
                .await?
                .apps),
            Self::Offline { access, .. } => {
                let now = now();
                Ok(access
                    .apps()
                    .iter()
                    .map(|app| views::app(app, now))
                    .collect())
            }
        }
    }

    async fn app(&self, name: &str) -> Result<AppView, CliError> {
        match self {
            Self::Online { .. } => self.call(reqwest::Method::GET, &app_path(name), None).await,
            Self::Offline { access, .. } => Ok(views::app(&access.app(name)?, now())),
        }
    }

    async fn create_app(&self, new: NewApp) -> Result<AppView, CliError> {
        match self {
            Self::Online { .. } => {
                self.call(reqwest::Method::POST, "/admin/apps", Some(to_json(&new)))
                    .await
            }
            Self::Offline { access, .. } => {
                let spec = validate::new_app(new)?;
                let now = now();
                let app = access.create_app(&Actor::server(), spec, now).await?;
                Ok(views::app(&app, now))
            }
        }
    }

    async fn update_app(&self, name: &str, patch: AppPatch) -> Result<AppView, CliError> {
        match self {
            Self::Online { .. } => {
                self.call(
                    reqwest::Method::PATCH,
                    &app_path(name),
                    Some(to_json(&patch)),
                )
                .await
            }
            Self::Offline { access, .. } => {
                access.app(name)?;
                let changes = validate::app_patch(patch)?;
                let now = now();
                let app = access
                    .update_app(&Actor::server(), name, changes, now)
                    .await?;
                Ok(views::app(&app, now))
            }
        }
    }

    async fn issue_token(&self, app: &str, new: NewToken) -> Result<IssuedToken, CliError> {
        match self {
            Self::Online { .. } => {
                let path = format!("{}/tokens", app_path(app));
                self.call(reqwest::Method::POST, &path, Some(to_json(&new)))
                    .await
            }
            Self::Offline { access, .. } => {
                let now = now();
                let spec = validate::new_token(new, now)?;
                let issued = access.issue_token(&Actor::server(), app, spec, now).await?;
                Ok(views::issued(&issued, now))
            }
        }
    }

    async fn tokens(&self, app: Option<&str>) -> Result<Vec<TokenView>, CliError> {
        match self {
            Self::Online { .. } => {
                let path = match app {
                    Some(app) => format!("/admin/tokens?app={}", encode(app)),
                    None => "/admin/tokens".to_owned(),
                };
                Ok(self
                    .call::<TokensAnswer>(reqwest::Method::GET, &path, None)
                    .await?
                    .tokens)
            }
            Self::Offline { access, .. } => {
                let now = now();
                Ok(access
                    .tokens(app)?
                    .iter()
                    .map(|listing| views::listing(listing, now))
                    .collect())
            }
        }
    }

    async fn revoke_token(&self, id: &str) -> Result<TokenView, CliError> {
        match self {
            Self::Online { .. } => {
                let path = format!("/admin/tokens/{}", encode(id));
                self.call(reqwest::Method::DELETE, &path, None).await
            }
            Self::Offline { access, .. } => {
                let now = now();
                let listing = access.revoke_token(&Actor::server(), id, now).await?;
                Ok(views::listing(&listing, now))
            }
        }
    }

    /// One admin API call; a refusal becomes its `detail` and code.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<T, CliError> {
        let Self::Online {
            client,
            base,
            token,
        } = self
        else {
            return Err(CliError("not connected to a server".to_owned()));
        };
        let mut request = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CliError(format!("cannot reach {base}: {e}")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| CliError(format!("reading the answer from {base}: {e}")))?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|e| CliError(format!("unexpected answer from {base} ({e}): {text}")));
        }
        Err(CliError(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(error) => format!("{} ({}, HTTP {status})", error.detail, error.error),
            Err(_) => format!("HTTP {status} from {base}: {text}"),
        }))
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn app_path(name: &str) -> String {
    format!("/admin/apps/{}", encode(name))
}

/// Percent-encodes everything but unreserved characters (RFC 3986 section
/// 2.3), so any application name is one path segment.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn show(app: &AppView, json: bool) {
    if json {
        print_json(app);
    } else {
        print_app(app);
    }
}

fn print_app(app: &AppView) {
    let none = || "-".to_owned();
    println!("application  {}", app.name);
    println!("roles        {}", app.roles.join(","));
    println!(
        "status       {}",
        if app.disabled { "disabled" } else { "enabled" }
    );
    println!(
        "description  {}",
        app.description.clone().unwrap_or_else(none)
    );
    println!("owner        {}", app.owner.clone().unwrap_or_else(none));
    println!("created      {}", app.created_at);
    println!(
        "last used    {}",
        app.last_used_at.clone().unwrap_or_else(none)
    );
    if !app.tokens.is_empty() {
        println!();
        print_tokens(&app.tokens);
    }
}

fn print_apps(apps: &[AppView]) {
    let rows = apps.iter().map(|app| {
        let live = app
            .tokens
            .iter()
            .filter(|token| token.status == "active")
            .count();
        vec![
            app.name.clone(),
            app.roles.join(","),
            if app.disabled { "disabled" } else { "enabled" }.to_owned(),
            live.to_string(),
            app.last_used_at.clone().unwrap_or_else(|| "-".to_owned()),
        ]
    });
    print_table(
        &["NAME", "ROLES", "STATUS", "LIVE TOKENS", "LAST USED"],
        rows,
    );
}

fn print_tokens(tokens: &[TokenView]) {
    let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let rows = tokens.iter().map(|token| {
        vec![
            token.id.clone(),
            token.app.clone(),
            token.status.clone(),
            dash(&token.expires_at),
            dash(&token.last_used_at),
            dash(&token.label),
        ]
    });
    print_table(
        &["TOKEN ID", "APP", "STATUS", "EXPIRES", "LAST USED", "LABEL"],
        rows,
    );
    for token in tokens {
        if let Some(problem) = &token.unreadable {
            println!("{}: cannot be read: {problem}", token.id);
        }
    }
}

fn print_issued(issued: &IssuedToken) {
    let token = &issued.details;
    println!("token        {}", issued.token);
    println!("token id     {}", token.id);
    println!("application  {}", token.app);
    println!(
        "expires      {}",
        token.expires_at.as_deref().unwrap_or("never")
    );
    println!(
        "\nThe token is shown only now; secapp keeps only its hash. Send it as \
         `Token: <token>` or `Authorization: Bearer <token>`."
    );
}

fn print_table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_name_is_one_path_segment() {
        assert_eq!(encode("billing"), "billing");
        assert_eq!(encode("a/b c?d"), "a%2Fb%20c%3Fd");
        assert_eq!(encode("x%y"), "x%25y");
    }
}
