//! The admin operations as the command line reaches them: over the admin
//! API of a running server, or on a stopped server's data dir through the
//! registry code the server itself uses.

use std::sync::Arc;

use secapp_api::ErrorBody;
use secapp_api::admin::{
    AppPatch, AppView, AppsAnswer, DeadLettersAnswer, IssuedToken, NewApp, NewToken,
    RetriedDeadLetter, TokenView, TokensAnswer,
};
use secapp_server::access::{Access, Actor, validate};
use secapp_server::data_dir::DataDir;
use secapp_server::relay::dead_letters::DeadLetters;
use secapp_server::routes::admin::views;
use secapp_server::store::{self, DatabaseUrl, Store};

use super::{CliError, Target};

/// The admin operations, over HTTP or on a data dir.
pub(crate) enum Admin {
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
    pub(super) async fn connect(target: &Target) -> Result<Self, CliError> {
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
        let store = store::connect(&url, store::Timings::default())
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

    pub(super) async fn close(self) {
        if let Self::Offline { store, .. } = self
            && let Err(e) = store.close().await
        {
            eprintln!("secapp: closing the data dir: {e}");
        }
    }

    pub(crate) async fn apps(&self) -> Result<Vec<AppView>, CliError> {
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

    pub(super) async fn app(&self, name: &str) -> Result<AppView, CliError> {
        match self {
            Self::Online { .. } => self.call(reqwest::Method::GET, &app_path(name), None).await,
            Self::Offline { access, .. } => Ok(views::app(&access.app(name)?, now())),
        }
    }

    pub(crate) async fn create_app(&self, new: NewApp) -> Result<AppView, CliError> {
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

    pub(super) async fn update_app(
        &self,
        name: &str,
        patch: AppPatch,
    ) -> Result<AppView, CliError> {
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

    pub(crate) async fn issue_token(
        &self,
        app: &str,
        new: NewToken,
    ) -> Result<IssuedToken, CliError> {
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

    pub(super) async fn tokens(&self, app: Option<&str>) -> Result<Vec<TokenView>, CliError> {
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

    pub(super) async fn revoke_token(&self, id: &str) -> Result<TokenView, CliError> {
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

    pub(super) async fn dead_letters(
        &self,
        sink: Option<String>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<DeadLettersAnswer, CliError> {
        match self {
            Self::Online { .. } => {
                let mut path = format!("/admin/dead-letters?limit={limit}");
                if let Some(sink) = &sink {
                    path.push_str(&format!("&sink={}", encode(sink)));
                }
                if let Some(before) = before {
                    path.push_str(&format!("&before={before}"));
                }
                self.call(reqwest::Method::GET, &path, None).await
            }
            Self::Offline { store, .. } => {
                let page = DeadLetters::offline(store.clone())
                    .list(sink, before, limit)
                    .await?;
                Ok(DeadLettersAnswer {
                    dead_letters: page.dead_letters,
                    next_before: page.next_before,
                })
            }
        }
    }

    pub(super) async fn retry_dead_letter(
        &self,
        sink: &str,
        event_id: i64,
    ) -> Result<RetriedDeadLetter, CliError> {
        match self {
            Self::Online { .. } => {
                let path = format!("/admin/dead-letters/{}/{event_id}/retry", encode(sink));
                self.call(reqwest::Method::POST, &path, None).await
            }
            Self::Offline { store, .. } => {
                DeadLetters::offline(store.clone())
                    .retry(&Actor::server(), sink, event_id, now())
                    .await?;
                Ok(RetriedDeadLetter {
                    sink: sink.to_owned(),
                    event_id,
                })
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
