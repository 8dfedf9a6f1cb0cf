use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use secapp_api::admin::{AppPatch, NewApp, NewToken};
use secapp_domain::{AppName, Role, Roles};

use super::{Access, AccessError, Actor, Authenticated, Refused};

/// The registry as the admin API drives it: wire requests checked into
/// specs, answers turned into views.
mod wire {
    use chrono::{DateTime, Utc};
    use secapp_api::admin::{AppPatch, AppView, IssuedToken, NewApp, NewToken, TokenView};

    use crate::access::{Access, AccessError, Actor, validate};
    use crate::routes::admin::views;

    pub async fn create_app(
        access: &Access,
        actor: &Actor,
        new: NewApp,
        now: DateTime<Utc>,
    ) -> Result<AppView, AccessError> {
        let spec = validate::new_app(new)?;
        Ok(views::app(&access.create_app(actor, spec, now).await?, now))
    }

    pub async fn update_app(
        access: &Access,
        actor: &Actor,
        name: &str,
        patch: AppPatch,
        now: DateTime<Utc>,
    ) -> Result<AppView, AccessError> {
        access.app(name)?;
        let changes = validate::app_patch(patch)?;
        Ok(views::app(
            &access.update_app(actor, name, changes, now).await?,
            now,
        ))
    }

    pub async fn issue_token(
        access: &Access,
        actor: &Actor,
        app: &str,
        new: NewToken,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, AccessError> {
        let spec = validate::new_token(new, now)?;
        Ok(views::issued(
            &access.issue_token(actor, app, spec, now).await?,
            now,
        ))
    }

    pub async fn revoke_token(
        access: &Access,
        actor: &Actor,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenView, AccessError> {
        Ok(views::listing(
            &access.revoke_token(actor, id, now).await?,
            now,
        ))
    }

    pub async fn bootstrap(
        access: &Access,
        now: DateTime<Utc>,
    ) -> Result<Option<IssuedToken>, AccessError> {
        Ok(access
            .bootstrap(now)
            .await?
            .map(|issued| views::issued(&issued, now)))
    }

    pub fn apps(access: &Access, now: DateTime<Utc>) -> Vec<AppView> {
        access
            .apps()
            .iter()
            .map(|app| views::app(app, now))
            .collect()
    }

    pub fn app(access: &Access, name: &str, now: DateTime<Utc>) -> Result<AppView, AccessError> {
        Ok(views::app(&access.app(name)?, now))
    }

    pub fn tokens(
        access: &Access,
        app: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<TokenView>, AccessError> {
        Ok(access
            .tokens(app)?
            .iter()
            .map(|listing| views::listing(listing, now))
            .collect())
    }
}
use crate::store::sqlite::SqliteStore;
use crate::store::{AuditQuery, Store};
use crate::token::ApiToken;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

const T0: &str = "2026-06-01T12:00:00Z";

async fn open(dir: &tempfile::TempDir, shared: Option<&str>) -> (Arc<dyn Store>, Access) {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join(crate::store::sqlite::DATABASE_FILE)).unwrap());
    let snapshot = store.snapshot().await.unwrap();
    let shared = shared.map(|token| ApiToken::new(token.into()).unwrap());
    let access = Access::new(store.clone(), snapshot.apps, snapshot.tokens, shared);
    (store, access)
}

fn new_app(name: &str, roles: &[&str]) -> NewApp {
    NewApp {
        name: name.into(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        description: None,
        owner: None,
    }
}

fn admin() -> Actor {
    Actor {
        name: "admin".into(),
        token: Some("tok_test".into()),
        source: Some("127.0.0.1".into()),
    }
}

#[tokio::test]
async fn an_issued_token_authenticates_as_its_app_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let (store, access) = open(&dir, None).await;
    let now = at(T0);
    wire::create_app(&access, &admin(), new_app("billing", &["consume"]), now)
        .await
        .unwrap();
    let issued = wire::issue_token(&access, &admin(), "billing", NewToken::default(), now)
        .await
        .unwrap();
    assert_eq!(issued.details.status, "active");
    match access.authenticate(issued.token.as_bytes(), now).unwrap() {
        Authenticated::App { app, roles, token } => {
            assert_eq!(app.as_str(), "billing");
            assert_eq!(roles, Roles::of(&[Role::Consume]));
            assert_eq!(&**token.id(), issued.details.id);
        }
        Authenticated::Shared => panic!("not the shared token"),
    }
    assert_eq!(
        access.authenticate(b"secapp_nope", now),
        Err(Refused::Invalid)
    );
    let revoked = wire::revoke_token(&access, &admin(), &issued.details.id, now)
        .await
        .unwrap();
    assert_eq!(revoked.status, "revoked");
    assert_eq!(
        access.authenticate(issued.token.as_bytes(), now),
        Err(Refused::Revoked)
    );
    // Revoking again changes nothing and is not audited twice.
    wire::revoke_token(
        &access,
        &admin(),
        &issued.details.id,
        now + Duration::seconds(5),
    )
    .await
    .unwrap();
    let events = access
        .audit(AuditQuery {
            limit: 10,
            before: None,
        })
        .await
        .unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.event.action.as_str()).collect();
    assert_eq!(actions, ["token.revoke", "token.issue", "app.create"]);
    assert_eq!(events[0].event.actor, "admin");
    assert_eq!(events[0].event.source.as_deref(), Some("127.0.0.1"));
    store.close().await.unwrap();
}

#[tokio::test]
async fn expiry_and_disabling_refuse_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let (store, access) = open(&dir, None).await;
    let now = at(T0);
    wire::create_app(&access, &admin(), new_app("billing", &["consume"]), now)
        .await
        .unwrap();
    let expiring = NewToken {
        expires_in: Some("1h".into()),
        ..NewToken::default()
    };
    let issued = wire::issue_token(&access, &admin(), "billing", expiring, now)
        .await
        .unwrap();
    assert_eq!(
        issued.details.expires_at.as_deref(),
        Some("2026-06-01T13:00:00.000Z")
    );
    let token = issued.token.as_bytes();
    assert!(
        access
            .authenticate(token, now + Duration::minutes(59))
            .is_ok()
    );
    assert_eq!(
        access.authenticate(token, now + Duration::hours(1)),
        Err(Refused::Expired)
    );
    let disable = AppPatch {
        disabled: Some(true),
        ..AppPatch::default()
    };
    let view = wire::update_app(&access, &admin(), "billing", disable, now)
        .await
        .unwrap();
    assert!(view.disabled);
    assert_eq!(access.authenticate(token, now), Err(Refused::Disabled));
    let enable = AppPatch {
        disabled: Some(false),
        ..AppPatch::default()
    };
    wire::update_app(&access, &admin(), "billing", enable, now)
        .await
        .unwrap();
    assert!(access.authenticate(token, now).is_ok());
    store.close().await.unwrap();
}

#[tokio::test]
async fn the_registry_survives_a_reopen_with_hashes_only() {
    let dir = tempfile::tempdir().unwrap();
    let now = at(T0);
    let (store, access) = open(&dir, None).await;
    let first = wire::bootstrap(&access, now)
        .await
        .unwrap()
        .expect("first start");
    assert!(wire::bootstrap(&access, now).await.unwrap().is_none());
    let later = now + Duration::minutes(3);
    match access.authenticate(first.token.as_bytes(), later) {
        Ok(Authenticated::App { token, .. }) => token.record(later),
        other => panic!("{other:?}"),
    }
    assert_eq!(access.flush_usage().await.unwrap(), 1);
    assert_eq!(access.flush_usage().await.unwrap(), 0);
    store.close().await.unwrap();

    let (store, access) = open(&dir, None).await;
    assert!(wire::bootstrap(&access, now).await.unwrap().is_none());
    let apps = wire::apps(&access, now);
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].name, "admin");
    assert_eq!(apps[0].roles, ["admin"]);
    assert_eq!(
        apps[0].last_used_at.as_deref(),
        Some("2026-06-01T12:03:00.000Z")
    );
    assert!(matches!(
        access.authenticate(first.token.as_bytes(), now),
        Ok(Authenticated::App { .. })
    ));
    store.close().await.unwrap();

    let database = std::fs::read(dir.path().join(crate::store::sqlite::DATABASE_FILE)).unwrap();
    let hex = first
        .token
        .strip_prefix(super::secret::TOKEN_PREFIX)
        .unwrap();
    assert!(
        !database
            .windows(hex.len())
            .any(|window| window == hex.as_bytes()),
        "the database holds the token"
    );
}

#[tokio::test]
async fn online_changes_cannot_lock_every_admin_out() {
    let dir = tempfile::tempdir().unwrap();
    let now = at(T0);
    let (store, access) = open(&dir, None).await;
    let first = wire::bootstrap(&access, now).await.unwrap().unwrap();
    let revoke = wire::revoke_token(&access, &admin(), &first.details.id, now).await;
    assert!(matches!(revoke, Err(AccessError::LastAdmin)), "{revoke:?}");
    let demote = AppPatch {
        roles: Some(vec!["viewer".into()]),
        ..AppPatch::default()
    };
    let demoted = wire::update_app(&access, &admin(), "admin", demote.clone(), now).await;
    assert!(
        matches!(demoted, Err(AccessError::LastAdmin)),
        "{demoted:?}"
    );
    // With a second live admin token, rotating the first one out is fine.
    wire::issue_token(&access, &admin(), "admin", NewToken::default(), now)
        .await
        .unwrap();
    wire::revoke_token(&access, &admin(), &first.details.id, now)
        .await
        .unwrap();
    store.close().await.unwrap();

    // Offline, the guard is off: that is how a locked-out data dir recovers.
    let (store, access) = open(&dir, None).await;
    let access = access.without_lockout_guard();
    wire::update_app(&access, &admin(), "admin", demote, now)
        .await
        .unwrap();
    store.close().await.unwrap();
}

#[tokio::test]
async fn the_shared_token_works_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let now = at(T0);
    let (store, with_shared) = open(&dir, Some("legacy-token")).await;
    assert!(with_shared.shared_token_enabled());
    assert_eq!(
        with_shared.authenticate(b"legacy-token", now),
        Ok(Authenticated::Shared)
    );
    store.close().await.unwrap();
    let (store, without) = open(&dir, None).await;
    assert!(!without.shared_token_enabled());
    assert_eq!(
        without.authenticate(b"legacy-token", now),
        Err(Refused::Invalid)
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn invalid_fields_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let now = at(T0);
    let (store, access) = open(&dir, None).await;
    let long = "x".repeat(513);
    let cases = [
        new_app("billing", &[]),
        new_app("billing", &["root"]),
        new_app("tab\tname", &["consume"]),
        NewApp {
            description: Some(long),
            ..new_app("billing", &["consume"])
        },
        NewApp {
            owner: Some("a\u{1b}[31mb".into()),
            ..new_app("billing", &["consume"])
        },
    ];
    for case in cases {
        let err = wire::create_app(&access, &admin(), case.clone(), now).await;
        assert!(
            matches!(err, Err(AccessError::Invalid(_))),
            "{case:?}: {err:?}"
        );
    }
    wire::create_app(&access, &admin(), new_app("billing", &["consume"]), now)
        .await
        .unwrap();
    let again = wire::create_app(&access, &admin(), new_app("billing", &["publish"]), now).await;
    assert!(matches!(again, Err(AccessError::AppExists(_))));
    for bad in [
        NewToken {
            expires_in: Some("soon".into()),
            ..NewToken::default()
        },
        NewToken {
            expires_at: Some("2020-01-01T00:00:00Z".into()),
            ..NewToken::default()
        },
        NewToken {
            expires_in: Some("1d".into()),
            expires_at: Some("2030-01-01T00:00:00Z".into()),
            label: None,
        },
        NewToken {
            label: Some("y".repeat(129)),
            ..NewToken::default()
        },
    ] {
        let err = wire::issue_token(&access, &admin(), "billing", bad.clone(), now).await;
        assert!(
            matches!(err, Err(AccessError::Invalid(_))),
            "{bad:?}: {err:?}"
        );
    }
    let unknown = wire::issue_token(&access, &admin(), "nobody", NewToken::default(), now).await;
    assert!(matches!(unknown, Err(AccessError::UnknownApp(_))));
    assert!(wire::tokens(&access, None, now).unwrap().is_empty());
    let unchanged = wire::update_app(&access, &admin(), "billing", AppPatch::default(), now)
        .await
        .unwrap();
    assert_eq!(unchanged, wire::app(&access, "billing", now).unwrap());
    let events = access
        .audit(AuditQuery {
            limit: 100,
            before: None,
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "only the one create is audited");
    assert!(access.is_registered(&AppName::parse("billing").unwrap()));
    store.close().await.unwrap();
}
