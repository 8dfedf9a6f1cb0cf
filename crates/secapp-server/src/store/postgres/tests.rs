//! The conformance suite and the round-trip property tests against a real
//! PostgreSQL, each test on a database of its own (see
//! [`TempPostgres`](crate::store::conformance::TempPostgres)).

use crate::store::conformance::TempPostgres;

crate::conformance_tests!(TempPostgres::new());
crate::round_trip_tests!(TempPostgres::new());
