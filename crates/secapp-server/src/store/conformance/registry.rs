//! The registry: applications, tokens, their audit, and two writers
//! changing them at once.

use secapp_domain::AppName;

use super::{Backend, audit_event, change, now_micros};
use crate::store::{
    AccessChange, AppRecord, AuditQuery, HistoryQuery, NewChange, StoreError, TokenRecord,
};

/// Applications and tokens survive a reopen exactly as written, each change
/// with its audit event; a change to something missing records nothing;
/// last-used times never move back; the token id of a publish is kept.
pub async fn keeps_applications_tokens_and_their_audit(backend: &dyn Backend) {
    use secapp_domain::{Role, Roles};
    let store = backend.open().await;
    let created = now_micros();
    let app = AppRecord {
        name: AppName::parse("billing").unwrap(),
        roles: Roles::of(&[Role::Consume, Role::Viewer]),
        description: Some("Invoices".into()),
        owner: None,
        created_at: created,
        updated_at: created,
        disabled_at: None,
        stale_after: None,
    };
    let token = TokenRecord {
        id: "tok_0002".into(),
        app: app.name.clone(),
        hash: [7; 32],
        label: Some("prod".into()),
        created_at: created,
        expires_at: Some(created + chrono::Duration::days(30)),
        revoked_at: None,
        last_used_at: None,
    };
    store
        .change_access(
            AccessChange::CreateApp(app.clone()),
            audit_event("app.create", "billing"),
            crate::store::AdminGuard::Off,
        )
        .await
        .unwrap();
    store
        .change_access(
            AccessChange::IssueToken(token.clone()),
            audit_event("token.issue", "tok_0002"),
            crate::store::AdminGuard::Off,
        )
        .await
        .unwrap();
    let disabled = AppRecord {
        disabled_at: Some(created),
        stale_after: Some(std::time::Duration::from_secs(300)),
        ..app.clone()
    };
    store
        .change_access(
            AccessChange::UpdateApp(disabled.clone()),
            audit_event("app.update", "billing"),
            crate::store::AdminGuard::Off,
        )
        .await
        .unwrap();
    let missing = store
        .change_access(
            AccessChange::RevokeToken {
                id: "tok_none".into(),
                at: created,
            },
            audit_event("token.revoke", "tok_none"),
            crate::store::AdminGuard::Off,
        )
        .await;
    assert!(missing.is_err(), "revoking an unknown token must fail");
    let used = created + chrono::Duration::minutes(5);
    store
        .save_token_usage(vec![("tok_0002".into(), used)])
        .await
        .unwrap();
    store
        .save_token_usage(vec![("tok_0002".into(), created)])
        .await
        .unwrap();
    let change = NewChange {
        token_id: Some("tok_0002".into()),
        ..change(3, "2026-03-01T12:00:00Z")
    };
    store.publish(change).await.unwrap();
    store.close().await.unwrap();

    let store = backend.open().await;
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.apps, vec![disabled]);
    assert_eq!(
        snapshot.tokens,
        vec![TokenRecord {
            last_used_at: Some(used),
            ..token
        }]
    );
    let audit = store
        .audit(AuditQuery {
            limit: 10,
            before: None,
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r.event.action.as_str()).collect();
    assert_eq!(
        actions,
        ["app.update", "token.issue", "app.create"],
        "newest first, no failed change"
    );
    assert_eq!(
        audit[2].event,
        audit_event("app.create", "billing").with_at(audit[2].event.at)
    );
    let older = store
        .audit(AuditQuery {
            limit: 10,
            before: Some(audit[0].id),
        })
        .await
        .unwrap();
    assert_eq!(older.len(), 2);
    let history = store
        .history(HistoryQuery {
            limit: 1,
            ..HistoryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(history[0].token_id.as_deref(), Some("tok_0002"));
    store.close().await.unwrap();
}

/// Two replicas changing the registry at once: a name or token id taken by
/// the other is a conflict, a change to something the other never wrote is
/// a conflict, and a failed change leaves no audit event.
pub async fn a_second_writer_conflicts_instead_of_overwriting(backend: &dyn Backend) {
    use secapp_domain::{Role, Roles};
    let (a, b) = (backend.open().await, backend.open().await);
    let now = now_micros();
    let app = |name: &str| AppRecord {
        name: AppName::parse(name).unwrap(),
        roles: Roles::of(&[Role::Consume]),
        description: None,
        owner: None,
        created_at: now,
        updated_at: now,
        disabled_at: None,
        stale_after: None,
    };
    let create = |name: &str| {
        (
            AccessChange::CreateApp(app(name)),
            audit_event("app.create", name),
        )
    };
    let (change, event) = create("billing");
    a.change_access(change, event, crate::store::AdminGuard::Off)
        .await
        .unwrap();
    let (change, event) = create("billing");
    let taken = b
        .change_access(change, event, crate::store::AdminGuard::Off)
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    let missing = b
        .change_access(
            AccessChange::UpdateApp(app("ghost")),
            audit_event("app.update", "ghost"),
            crate::store::AdminGuard::Off,
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::Conflict(_))),
        "{missing:?}"
    );
    let audit = a
        .audit(AuditQuery {
            limit: 10,
            before: None,
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "only the change that happened is audited");
    assert_eq!(b.snapshot().await.unwrap().apps, vec![app("billing")]);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// Two servers each revoking one of the last two admin tokens: one is
/// refused, whatever each saw in its memory; the offline guard-off change
/// is allowed.
pub async fn two_writers_cannot_remove_the_last_two_admins(backend: &dyn Backend) {
    use crate::store::{AdminGuard, Changed};
    use secapp_domain::{Role, Roles};
    let (a, b) = (backend.open().await, backend.open().await);
    let now = now_micros();
    let admin = AppRecord {
        name: AppName::parse("root").unwrap(),
        roles: Roles::of(&[Role::Admin]),
        description: None,
        owner: None,
        created_at: now,
        updated_at: now,
        disabled_at: None,
        stale_after: None,
    };
    a.change_access(
        AccessChange::CreateApp(admin.clone()),
        audit_event("app.create", "root"),
        AdminGuard::KeepOne,
    )
    .await
    .unwrap();
    for n in 1..=2u8 {
        let token = TokenRecord {
            id: format!("tok_root_{n}"),
            app: admin.name.clone(),
            hash: [n; 32],
            label: None,
            created_at: now,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        };
        a.change_access(
            AccessChange::IssueToken(token),
            audit_event("token.issue", "root"),
            AdminGuard::KeepOne,
        )
        .await
        .unwrap();
    }
    let revoke = |n: u8| {
        (
            AccessChange::RevokeToken {
                id: format!("tok_root_{n}"),
                at: now,
            },
            audit_event("token.revoke", "root"),
        )
    };
    let ((one, one_event), (two, two_event)) = (revoke(1), revoke(2));
    let (first, second) = tokio::join!(
        a.change_access(one, one_event, AdminGuard::KeepOne),
        b.change_access(two, two_event, AdminGuard::KeepOne)
    );
    let outcomes = [first.unwrap(), second.unwrap()];
    assert!(
        outcomes.contains(&Changed::Applied) && outcomes.contains(&Changed::WouldLeaveNoAdmin),
        "{outcomes:?}"
    );
    let tokens = a.snapshot().await.unwrap().tokens;
    assert_eq!(
        tokens.iter().filter(|t| t.revoked_at.is_none()).count(),
        1,
        "one admin token is left"
    );
    // Offline recovery may leave none.
    let last = tokens.iter().find(|t| t.revoked_at.is_none()).unwrap();
    let offline = b
        .change_access(
            AccessChange::RevokeToken {
                id: last.id.clone(),
                at: now,
            },
            audit_event("token.revoke", "root"),
            AdminGuard::Off,
        )
        .await
        .unwrap();
    assert_eq!(offline, Changed::Applied);
    a.close().await.unwrap();
    b.close().await.unwrap();
}
