//! How the admin commands print: tables for people, the API's JSON with
//! `--json`.

use secapp_api::admin::{AppView, IssuedToken, TokenView};

pub(super) fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

pub(super) fn show(app: &AppView, json: bool) {
    if json {
        print_json(app);
    } else {
        print_app(app);
    }
}

pub(super) fn print_app(app: &AppView) {
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
    println!(
        "stale after  {}",
        app.stale_after
            .clone()
            .unwrap_or_else(|| "the server's --stale-after".to_owned())
    );
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

pub(super) fn print_apps(apps: &[AppView]) {
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

pub(super) fn print_tokens(tokens: &[TokenView]) {
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

pub(super) fn print_issued(issued: &IssuedToken) {
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
