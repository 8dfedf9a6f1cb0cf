//! A client for secapp: publish the organisation's security criticality
//! level, and learn it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), secapp_client::Error> {
//! let client = secapp_client::Client::builder("http://127.0.0.1:8000")
//!     .app("billing")
//!     .token("secapp_…")
//!     .build()?;
//! if let Some(state) = client.poll().await? {
//!     println!("level {} since {}", state.level, state.changed_at);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Every method answers one typed [`Error`]. A publish carries an
//! `Idempotency-Key` (generated unless one is given), so retrying it after a
//! lost answer records it once.
//!
//! [`Client::watch`] hands out every new state as a `Stream`, over
//! server-sent events or long polls, resuming where it left off after a
//! restart, a cut connection or a move to another replica, and never handing
//! out a state twice or an older one after a newer one.
//!
//! - `error.rs`: [`Error`], from the server's JSON error bodies.
//! - `watch.rs`: [`Watch`] and its [`WatchOptions`].
//! - `sse.rs`: reading `text/event-stream`.

mod error;
mod sse;
mod watch;

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use secapp_api::{
    APP_NAME_HEADER, CurrentState, IDEMPOTENCY_KEY_HEADER, POLL_AFTER_HEADER, PollAnswer,
    PublishAnswer, PublishRequest, TOKEN_HEADER,
};

pub use error::Error;
pub use watch::{RetryHook, Transport, Watch, WatchOptions};

/// The crate's README, compiled as a doctest so its example stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctest;

/// The state in force, as the server tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The criticality level.
    pub level: i64,
    /// The id of the change that set it: larger ids are newer changes.
    pub id: i64,
    /// When the level changed, RFC 3339 in UTC.
    pub changed_at: String,
}

impl From<CurrentState> for State {
    fn from(state: CurrentState) -> Self {
        Self {
            level: state.current_status,
            id: state.status_change_id,
            changed_at: state.change_at,
        }
    }
}

/// A publish to make: the level, and optionally when it changed and the
/// idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// The new level.
    pub level: i64,
    /// When it changed (RFC 3339); the server's time of receipt if `None`.
    pub changed_at: Option<String>,
    /// The key that makes a retry record nothing new; generated if `None`.
    pub idempotency_key: Option<String>,
}

impl Publish {
    /// The level, changed now, with a generated key.
    #[must_use]
    pub fn level(level: i64) -> Self {
        Self {
            level,
            changed_at: None,
            idempotency_key: None,
        }
    }

    /// Changed at `at` (RFC 3339).
    #[must_use]
    pub fn at(mut self, at: impl Into<String>) -> Self {
        self.changed_at = Some(at.into());
        self
    }

    /// With this idempotency key (1 to 255 visible ASCII characters).
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct Builder {
    base: String,
    app: Option<String>,
    token: Option<String>,
    timeout: Duration,
}

impl Builder {
    /// The application this client speaks for (`App-name`).
    #[must_use]
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// Its token.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How long a request may take, held long polls excepted (default 10 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The client.
    ///
    /// # Errors
    /// [`Error::Invalid`] without an application or token, or with one that
    /// cannot be a header; [`Error::Transport`] when TLS cannot be set up.
    pub fn build(self) -> Result<Client, Error> {
        let invalid = |detail: &str| Error::Invalid {
            code: "client_setup".to_owned(),
            detail: detail.to_owned(),
        };
        let app = self
            .app
            .ok_or_else(|| invalid("give the application: .app(name)"))?;
        let token = self
            .token
            .ok_or_else(|| invalid("give the token: .token(token)"))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            APP_NAME_HEADER,
            HeaderValue::from_str(&app)
                .map_err(|_| invalid("the application name cannot be a header"))?,
        );
        let mut secret =
            HeaderValue::from_str(&token).map_err(|_| invalid("the token cannot be a header"))?;
        secret.set_sensitive(true);
        headers.insert(TOKEN_HEADER, secret);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("secapp-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.timeout)
            .build()
            .map_err(|e| Error::Transport(e.to_string()))?;
        let base = self.base.trim_end_matches('/');
        Ok(Client {
            http,
            update: format!("{base}/secapp/update"),
            stream: format!("{base}/secapp/stream"),
            timeout: self.timeout,
        })
    }
}

/// A client of one secapp server (or balancer), speaking for one application.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    update: String,
    stream: String,
    timeout: Duration,
}

impl Client {
    /// Starts building a client of the server at `base` (`http://host:port`).
    #[must_use]
    pub fn builder(base: impl Into<String>) -> Builder {
        Builder {
            base: base.into(),
            app: None,
            token: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Publishes a level; answers its `processed_id` once it is durable.
    /// Retried with the same [`Publish`] (same key), it is recorded once.
    ///
    /// # Errors
    /// [`Error`] as the server refused it, or the transport failed.
    pub async fn publish(&self, publish: &Publish) -> Result<i64, Error> {
        let key = match &publish.idempotency_key {
            Some(key) => key.clone(),
            None => generated_key()?,
        };
        let body = PublishRequest {
            current_status: publish.level,
            change_at: publish.changed_at.clone(),
        };
        let response = self
            .http
            .post(&self.update)
            .header(IDEMPOTENCY_KEY_HEADER, key)
            .json(&body)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(Error::from_reqwest)?;
        let answer: PublishAnswer = error::read(response).await?;
        Ok(answer.processed_id)
    }

    /// The server-held cursor: the current state if this application has
    /// not been told it yet, `None` when it has.
    ///
    /// # Errors
    /// [`Error`] as the server refused it, or the transport failed.
    pub async fn poll(&self) -> Result<Option<State>, Error> {
        Ok(self.get(&self.update, self.timeout).await?.0)
    }

    /// A cursor this client holds: the current state if its id is not
    /// `after`, `None` when it is. The server-held cursor is not touched.
    ///
    /// # Errors
    /// [`Error`] as the server refused it, or the transport failed.
    pub async fn poll_after(&self, after: i64) -> Result<Option<State>, Error> {
        let url = format!("{}?after={after}", self.update);
        Ok(self.get(&url, self.timeout).await?.0)
    }

    /// As [`poll_after`](Self::poll_after), held by the server up to `wait`
    /// (it cuts longer waits to its `--max-wait`) until there is news.
    ///
    /// # Errors
    /// [`Error`] as the server refused it, or the transport failed.
    pub async fn wait(&self, after: i64, wait: Duration) -> Result<Option<State>, Error> {
        Ok(self.wait_paced(after, wait).await?.0)
    }

    /// Every new state from now on (the current one first), each once, in
    /// order, with the default [`WatchOptions`]: see [`Watch`].
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    ///
    /// # async fn demo(client: secapp_client::Client) -> Result<(), secapp_client::Error> {
    /// let mut changes = client.watch();
    /// while let Some(state) = changes.next().await {
    ///     let state = state?;
    ///     println!("level {} (change {})", state.level, state.id);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn watch(&self) -> Watch {
        self.watch_with(WatchOptions::default())
    }

    /// As [`watch`](Self::watch), started and paced as `options` say.
    ///
    /// ```no_run
    /// # fn demo(client: secapp_client::Client) {
    /// use secapp_client::{Transport, WatchOptions};
    /// use std::time::Duration;
    ///
    /// let options = WatchOptions::default()
    ///     .after(17) // the last id this service acted on
    ///     .transport(Transport::LongPoll)
    ///     .max_backoff(Duration::from_secs(5));
    /// let changes = client.watch_with(options);
    /// # }
    /// ```
    #[must_use]
    pub fn watch_with(&self, options: WatchOptions) -> Watch {
        Watch::new(self.clone(), options)
    }

    /// A long poll, with the server's `Secapp-Poll-After`.
    pub(crate) async fn wait_paced(
        &self,
        after: i64,
        wait: Duration,
    ) -> Result<(Option<State>, Option<Duration>), Error> {
        let url = format!("{}?after={after}&wait={}", self.update, wait.as_secs_f64());
        self.get(&url, wait + self.timeout).await
    }

    async fn get(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<(Option<State>, Option<Duration>), Error> {
        let response = self
            .http
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(Error::from_reqwest)?;
        let poll_after = response
            .headers()
            .get(POLL_AFTER_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok())
            .map(Duration::from_secs);
        let state = match error::read::<PollAnswer>(response).await? {
            PollAnswer::Changed(state) => Some(state.into()),
            PollAnswer::Unchanged(_) => None,
        };
        Ok((state, poll_after))
    }
}

/// A fresh idempotency key: 128 random bits in hex.
fn generated_key() -> Result<String, Error> {
    let mut bytes = [0_u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::Transport(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
