//! `Change_at`: whatever is accepted echoes as text that reads back as the
//! same instant with the same digits (what the store writes for a head, it
//! must read at the next start).
#![no_main]

use libfuzzer_sys::fuzz_target;
use secapp_domain::ChangedAt;

fuzz_target!(|text: &str| {
    let Ok(at) = ChangedAt::parse(text) else {
        return;
    };
    assert!(secapp_domain::in_range(at.instant()));
    let echoed = at.to_string();
    let again = ChangedAt::parse(&echoed).expect("an echoed time reads back");
    assert_eq!(again, at);
    assert_eq!(again.to_string(), echoed);
});
